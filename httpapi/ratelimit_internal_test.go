package httpapi

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestIdleBucketsAreEvicted(t *testing.T) {
	b := newBuckets(1, 0)
	if b.burst != 10 {
		t.Fatalf("burst %d, want ferrite's max(10·RPS, 10)", b.burst)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		b.allow(httptest.NewRecorder(), "10.0.0."+strconv.Itoa(i), t0)
	}
	b.allow(httptest.NewRecorder(), "busy", t0.Add(4*time.Minute))
	if n := b.size(); n != 51 {
		t.Fatalf("%d buckets, want 51", n)
	}
	b.allow(httptest.NewRecorder(), "busy", t0.Add(bucketIdle+time.Second))
	if n := b.size(); n != 1 {
		t.Fatalf("%d buckets after the idle ones expired, want 1 (the busy one)", n)
	}
	if newBuckets(0, 0) != nil {
		t.Fatal("RPS 0 must disable limiting")
	}
}

// A reservation given back (a password that passed) leaves the bucket as it was, however many pass in a row: an
// admin whose every change makes the authenticator check the password again is not locked out.
func TestReserveUndoRestores(t *testing.T) {
	b := newBuckets(0.2, 5)
	t0 := time.Now()
	for i := range 20 {
		undo, err := b.reserve(httptest.NewRecorder(), "10.0.0.1\x00admin", t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatalf("check %d refused: %v", i, err)
		}
		undo()
	}
}
