package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/lodestone-fleet/lodestone/otlp"
)

// startOTLPProc starts the real binary with the OTLP receiver on a free port and waits for /healthz.
func startOTLPProc(t *testing.T, bin, dir, tokens string) (*proc, string) {
	t.Helper()
	addr, grpcAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve", "--http", addr, "--data-dir", dir, "--tokens-config", tokens,
		"--otlp-grpc", grpcAddr, "--otlp-http", "")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BASIC_AUTH_PASS=pw"}
	p := &proc{cmd: cmd, addr: addr, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if resp, err := http.Get("http://" + grpcAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return p, grpcAddr
			}
		}
		select {
		case err := <-p.exited:
			t.Fatalf("lodestone exited during start: %v\n%s", err, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("OTLP receiver did not become healthy\n%s", p.stderr.String())
	return nil, ""
}

func writeTokens(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "tokens.toml")
	text := fmt.Sprintf(`[[token]]
id = "bench"
secret = %q
project = "fleet"
source_prefix = "fleet/"

[rate_limit]
logs_per_minute = 60000000
logs_burst = 1000000
`, otlp.HashToken("kill-token"))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportRequest is batch i of worker w: n records whose bodies name the batch.
func exportRequest(w, i, n int) *collogspb.ExportLogsServiceRequest {
	sl := &logspb.ScopeLogs{}
	for k := range n {
		sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{TimeUnixNano: uint64(time.Now().UnixNano()),
			SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
			Body:           &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("b %d %d %d", w, i, k)}}})
	}
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "device.id",
		Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("dev-%d", w)}}}}}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{Resource: res, ScopeLogs: []*logspb.ScopeLogs{sl}}}}
}

// TestKillNineLosesNoAcknowledgedLogs exports logs over gRPC from several clients, kills the server with SIGKILL
// mid-load, restarts it on the same data and checks that every acknowledged export is stored whole.
func TestKillNineLosesNoAcknowledgedLogs(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tokens := writeTokens(t, dir)
	p, grpcAddr := startOTLPProc(t, bin, dir, tokens)

	const perExport = 200
	var (
		mu    sync.Mutex
		acked = map[[2]int]bool{}
		count atomic.Int64
		wg    sync.WaitGroup
	)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer kill-token")
	for w := range 6 {
		wg.Go(func() {
			cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			c := collogspb.NewLogsServiceClient(cc)
			for i := 0; ; i++ {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.Export(cctx, exportRequest(w, i, perExport))
				cancel()
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[[2]int{w, i}] = true
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	waitFor(t, 60*time.Second, "150 exports acknowledged", func() bool { return count.Load() >= 150 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 15*time.Second)
	wg.Wait()

	// Restart on the same data, then stop cleanly and count what the database holds.
	p2, _ := startOTLPProc(t, bin, dir, tokens)
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.wait(t, 30*time.Second); err != nil {
		t.Fatalf("restarted server: %v\n%s", err, p2.stderr.String())
	}
	db, err := sql.Open("sqlite3", filepath.Join(dir, "lodestone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT body FROM logs`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]int]int{}
	for rows.Next() {
		var body string
		var w, i, k int
		rows.Scan(&body)
		if _, err := fmt.Sscanf(strings.Trim(body, `"`), "b %d %d %d", &w, &i, &k); err != nil {
			t.Fatalf("body %q", body)
		}
		stored[[2]int{w, i}]++
	}
	rows.Close()
	t.Logf("%d exports (%d records) acknowledged before SIGKILL; %d exports stored", len(acked),
		len(acked)*perExport, len(stored))
	for b := range acked {
		if stored[b] != perExport {
			t.Fatalf("acknowledged export %v has %d of %d records after SIGKILL", b, stored[b], perExport)
		}
	}
	for b, n := range stored {
		if n != perExport {
			t.Fatalf("export %v stored partly: %d records", b, n)
		}
	}
}
