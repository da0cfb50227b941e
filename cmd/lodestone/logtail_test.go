package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// tailLogs reads a replica's GET /logs/stream (with query q) into a channel of the "logs" events' records.
func tailLogs(t *testing.T, addr, pass, q string) <-chan []lodestone.LogRecordJSON {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/logs/stream?"+q, nil)
	req.SetBasicAuth("admin", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("log stream on %s: HTTP %d", addr, resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan []lodestone.LogRecordJSON, 1024)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && typ == "logs":
				var recs []lodestone.LogRecordJSON
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &recs); err != nil {
					t.Errorf("log event data: %v", err)
				}
				out <- recs
			case line == "":
				typ = ""
			}
		}
	}()
	return out
}

// exportTo sends export i of worker w (n records, bodies "b w i k") to a replica's OTLP gRPC listener.
func exportTo(t *testing.T, grpcAddr string, w, i, n int) {
	t.Helper()
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer kill-token")
	if _, err := collogspb.NewLogsServiceClient(cc).Export(ctx, exportRequest(w, i, n)); err != nil {
		t.Fatalf("export to %s: %v", grpcAddr, err)
	}
}

// collectTail reads a tail until it has seen the records of every export in want ("w i" keys), and fails on a
// record seen twice, a batch split or out of order, or a record of an export the tail should not show.
func collectTail(t *testing.T, name string, tail <-chan []lodestone.LogRecordJSON, n int, want ...string) {
	t.Helper()
	wanted := map[string]bool{}
	for _, k := range want {
		wanted[k] = true
	}
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < len(want) {
		select {
		case recs, ok := <-tail:
			if !ok {
				t.Fatalf("%s: the stream ended", name)
			}
			var w, i, k int
			for j, r := range recs {
				var body string
				json.Unmarshal(r.Body, &body)
				if _, err := fmt.Sscanf(body, "b %d %d %d", &w, &i, &k); err != nil || k != j || r.ID != recs[0].ID+int64(j) {
					t.Fatalf("%s: record %d of an event is %q (id %d), want one batch in order", name, j, body, r.ID)
				}
			}
			if len(recs) != n {
				t.Fatalf("%s: an event holds %d records, want the whole export of %d", name, len(recs), n)
			}
			key := fmt.Sprintf("%d %d", w, i)
			if !wanted[key] || seen[key] {
				t.Fatalf("%s: export %q delivered unexpectedly (wanted %v, seen %v)", name, key, want, seen)
			}
			seen[key] = true
		case <-deadline:
			t.Fatalf("%s: saw exports %v of %v", name, seen, want)
		}
	}
}

// TestLogTailAcrossReplicas runs two real lodestone processes on one PostgreSQL schema: a record exported over
// OTLP gRPC to either replica reaches the live log tails of both, once, whole and in order, and the tail's
// filters still apply.
func TestLogTailAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	db := pgtest.URL(t)
	bin := buildBinary(t)
	const pass = "tail-secret"
	dir := t.TempDir()
	tokens := writeTokens(t, dir)
	env := []string{"LODESTONE_DB=" + db, "BASIC_AUTH_PASS=" + pass}
	grpcA, grpcB := freeAddr(t), freeAddr(t)
	a := startWith(t, bin, t.TempDir(), []string{"--tokens-config", tokens, "--otlp-grpc", grpcA, "--otlp-http", ""}, env...)
	b := startWith(t, bin, t.TempDir(), []string{"--tokens-config", tokens, "--otlp-grpc", grpcB, "--otlp-http", ""}, env...)

	tailA := tailLogs(t, a.addr, pass, "")
	tailB := tailLogs(t, b.addr, pass, "")
	onlyOne := tailLogs(t, b.addr, pass, url.Values{"device": {"dev-1"}}.Encode())

	const n = 5
	exportTo(t, grpcA, 0, 0, n) // dev-0 through A
	exportTo(t, grpcB, 1, 0, n) // dev-1 through B
	exportTo(t, grpcA, 1, 1, n) // dev-1 through A
	collectTail(t, "tail on A", tailA, n, "0 0", "1 0", "1 1")
	collectTail(t, "tail on B", tailB, n, "0 0", "1 0", "1 1")
	collectTail(t, "dev-1 tail on B", onlyOne, n, "1 0", "1 1")

	// Nothing arrives twice: a later export is the next thing every tail sees.
	exportTo(t, grpcB, 1, 2, n)
	collectTail(t, "tail on A", tailA, n, "1 2")
	collectTail(t, "tail on B", tailB, n, "1 2")
	collectTail(t, "dev-1 tail on B", onlyOne, n, "1 2")

	// The internal batch announcements stay off the public event stream.
	events := subscribe(t, a.addr, pass)
	exportTo(t, grpcB, 0, 1, n)
	collectTail(t, "tail on A", tailA, n, "0 1")
	post(t, a.addr, session("dev-x", 1))
	deadline := time.After(20 * time.Second)
	for {
		var e sseEvent
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("/events/stream ended before its heartbeat")
			}
			e = ev
		case <-deadline:
			t.Fatal("no heartbeat on /events/stream within 20s")
		}
		if e.typ == lodestone.EventLogBatch {
			t.Fatalf("/events/stream sent %s: %s", e.typ, e.data)
		}
		if e.typ == "heartbeat" {
			break
		}
	}
}
