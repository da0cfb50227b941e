package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
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
)

// TestBackupWhileWriting takes snapshots while a writer commits batches non-stop. Each snapshot must open as a
// healthy lodestone database holding every batch acknowledged before the snapshot began, no partial batch, and
// nothing that was not yet written when it ended; and the temporary files must be gone afterwards.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	var acked atomic.Int64 // batches whose WriteTelemetry returned nil
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
			// One batch = 1 heartbeat, 3 metrics, 1 fault, in one transaction.
			b := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%d", i%20), ReceivedAt: time.Now(),
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}},
				Metrics:    []lodestone.Metric{{Key: "a", Value: 1}, {Key: "b", Value: 2}, {Key: "c", Value: float64(i)}},
				Faults:     []lodestone.Fault{{FaultType: 1, Registers: lodestone.Registers{PC: uint32(i)}}}}
			if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{b}); err != nil {
				t.Error(err)
				return
			}
			acked.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for round := range 3 {
		want := int64(200 * (round + 1))
		waitFor(t, 30*time.Second, fmt.Sprintf("%d batches acknowledged while backing up", want),
			func() bool { return acked.Load() >= want })
		before := acked.Load()
		snap, err := db.Backup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after := acked.Load() + 1 // a batch may commit between its WriteTelemetry and the counter
		path := filepath.Join(t.TempDir(), "restored.db")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(f, snap)
		if err != nil || n != snap.Size || f.Close() != nil {
			t.Fatalf("copy snapshot: %d of %d bytes: %v", n, snap.Size, err)
		}
		if err := snap.Close(); err != nil {
			t.Fatal(err)
		}
		head, _ := os.ReadFile(path)
		if !bytes.HasPrefix(head, []byte("SQLite format 3\x00")) {
			t.Fatal("snapshot is not a SQLite file")
		}
		raw, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var check string
		var hb, metrics, faults int64
		err = raw.QueryRow(`PRAGMA integrity_check`).Scan(&check)
		if err == nil {
			err = raw.QueryRow(`SELECT (SELECT count(*) FROM heartbeats), (SELECT count(*) FROM metrics),
				(SELECT count(*) FROM faults)`).Scan(&hb, &metrics, &faults)
		}
		raw.Close()
		if err != nil || check != "ok" {
			t.Fatalf("snapshot check %q: %v", check, err)
		}
		if hb < before || hb > after || metrics != 3*hb || faults != hb {
			t.Fatalf("round %d: snapshot has %d batches (%d metrics, %d faults); acknowledged %d before, %d after",
				round, hb, metrics, faults, before, after)
		}
		// The snapshot is a lodestone database: it opens (schema current) and answers queries.
		restored, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ms, err := restored.FindMetrics(ctx, lodestone.MetricFilter{Key: "c", TelemetryFilter: lodestone.TelemetryFilter{Limit: 1}})
		restored.Close()
		if err != nil || len(ms) != 1 || int64(ms[0].Value) != hb-1 {
			t.Fatalf("restored newest metric %v %v, want value %d", ms, err, hb-1)
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(db.Path()), "*.backup-*"))
	if len(left) != 0 {
		t.Fatalf("temporary snapshot files left behind: %v", left)
	}
	// The backup's connection went back to the read pool query-only again.
	for range 8 {
		if _, err := db.ReadDB().Exec(`DELETE FROM heartbeats`); err == nil {
			t.Fatal("read pool writable after a backup")
		}
	}
}

func TestBackupCanceled(t *testing.T) {
	db := MustOpenDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Backup(ctx); err == nil {
		t.Fatal("a canceled backup succeeded")
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(db.Path()), "*.backup-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	// The pool still refuses writes after the backup's connection went back.
	if _, err := db.ReadDB().Exec(`DELETE FROM devices`); err == nil {
		t.Fatal("read pool writable after a backup")
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
