package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/lodestone-fleet/lodestone/loadgen"
)

// TestLoadgenRuns runs a short in-process measurement and checks both reports.
func TestLoadgenRuns(t *testing.T) {
	var out bytes.Buffer
	c := &loadgenCmd{stdout: &out, stderr: io.Discard}
	err := c.Run(context.Background(), []string{"--duration", "700ms", "--raw-duration", "300ms", "--devices", "50",
		"--concurrency", "4", "--bodies", "64", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	var reports []loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &reports); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(reports) != 2 {
		t.Fatalf("%d reports", len(reports))
	}
	e2e, raw := reports[0], reports[1]
	if e2e.Requests == 0 || e2e.Chunks < e2e.Requests || e2e.Failed != 0 || e2e.ChunksPerSec <= 0 || e2e.P50 <= 0 ||
		e2e.P99 < e2e.P50 || e2e.Max < e2e.P99 {
		t.Fatalf("end-to-end report %+v", e2e)
	}
	if raw.Chunks == 0 || raw.ChunksPerSec <= 0 {
		t.Fatalf("raw report %+v", raw)
	}
}

func TestLoadgenFlagErrors(t *testing.T) {
	c := &loadgenCmd{stdout: io.Discard, stderr: io.Discard}
	if err := c.Run(context.Background(), []string{"--devices", "0"}); err == nil {
		t.Fatal("--devices 0 accepted")
	}
	if err := c.Run(context.Background(), []string{"--url", "http://127.0.0.1:1/ingest/chunks", "--duration", "200ms",
		"--raw-duration", "0"}); err == nil {
		t.Fatal("an unreachable server reported no failure")
	}
}
