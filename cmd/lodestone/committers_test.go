package main

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/otlp"
)

type committerLog []int

func (c *committerLog) SetCommitters(n int) { *c = append(*c, n) }

// followReplicas bounds every writer on the shared database alike, and an OTLP receiver that is off (a nil
// *otlp.Server) is skipped rather than a crash.
func TestCommitterSettersReachEveryWriter(t *testing.T) {
	var a, b committerLog
	var off *otlp.Server
	committerSetters{&a, off, &b}.SetCommitters(1)
	if len(a) != 1 || a[0] != 1 || len(b) != 1 || b[0] != 1 {
		t.Fatalf("SetCommitters(1) reached %v and %v", a, b)
	}
}
