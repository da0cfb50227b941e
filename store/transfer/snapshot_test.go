package transfer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/transfer"
)

// saveSnapshot takes a backup of a PostgreSQL instance and writes it to a file.
func saveSnapshot(t *testing.T, b *transfer.PostgresBackup) string {
	t.Helper()
	snap, err := b.Backup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(f, snap); err != nil || n != snap.Size || f.Close() != nil || snap.Close() != nil {
		t.Fatalf("save snapshot: %d of %d bytes, %v", n, snap.Size, err)
	}
	if left, _ := filepath.Glob(filepath.Join(b.Dir, "lodestone-pg-backup-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	return path
}

// A PostgreSQL instance backs up into a SQLite file that answers every read as the instance does: SQLite →
// copy → PostgreSQL → backup → SQLite keeps every row, id, NaN and 64-bit build id.
func TestPostgresBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, pg := openPair(t)
	populate(t, src, 6, 3)
	if _, err := transfer.Copy(ctx, src.ReadDB(), pg.Pool(), nil); err != nil {
		t.Fatal(err)
	}
	path := saveSnapshot(t, &transfer.PostgresBackup{Pool: pg.Pool(), Dir: t.TempDir()})
	restored, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	compare(t, pg, restored)
	compare(t, src, restored)
	if v, err := restored.Setting(ctx, "admin_password_hash"); err != nil || v != "$2a$10$abc" {
		t.Fatalf("setting: %q %v", v, err)
	}
	// The restored file takes new writes after the copied ids.
	if err := restored.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "dev-000", ReceivedAt: base.Add(time.Hour),
		Metrics: []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: 99}}}}); err != nil {
		t.Fatal(err)
	}
}

// A backup taken while PostgreSQL keeps committing holds whole batches only, and every batch committed before it.
func TestPostgresBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	_, pg := openPair(t)
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%d", i%7), ReceivedAt: time.Now(),
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}},
				Metrics:    []lodestone.Metric{{Key: "a", Value: 1}, {Key: "b", Value: 2}},
				Faults:     []lodestone.Fault{{FaultType: 1}}}
			if err := pg.WriteTelemetry(ctx, []*lodestone.DeviceBatch{b}); err != nil {
				t.Error(err)
				return
			}
			acked.Add(1)
		}
	}()
	waitFor(t, 30*time.Second, "30 batches acknowledged before the snapshot", func() bool { return acked.Load() >= 30 })
	before := acked.Load()
	path := saveSnapshot(t, &transfer.PostgresBackup{Pool: pg.Pool(), Dir: t.TempDir()})
	after := acked.Load() + 1
	close(stop)
	wg.Wait()
	restored, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	var hb, metrics, faults int64
	if err := restored.ReadDB().QueryRow(`SELECT (SELECT count(*) FROM heartbeats), (SELECT count(*) FROM metrics),
		(SELECT count(*) FROM faults)`).Scan(&hb, &metrics, &faults); err != nil {
		t.Fatal(err)
	}
	if hb < before || hb > after || metrics != 2*hb || faults != hb {
		t.Fatalf("backup holds %d batches (%d metrics, %d faults); %d acknowledged before, %d after", hb, metrics,
			faults, before, after)
	}
}

// waitFor fails the test unless cond holds within timeout; what says what did not happen.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
