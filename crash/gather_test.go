package crash_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// countingStore counts the rounds that claimed faults.
type countingStore struct {
	*sqlite.DB
	rounds atomic.Int32
}

func (s *countingStore) ClaimFaults(ctx context.Context, limit int, lease time.Duration) ([]*lodestone.Fault, error) {
	f, err := s.DB.ClaimFaults(ctx, limit, lease)
	if len(f) > 0 {
		s.rounds.Add(1)
	}
	return f, err
}

// Commits that store faults one after another wake the workers each time, but within Gather of a round the next
// one waits and takes them together: ingest pays for a claim and a save per interval, not per commit. Every fault
// is still symbolicated promptly, without waiting for the poll.
func TestNotifiesWithinGatherShareARound(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{DB: db}
	sym := crash.New(crash.Config{PollInterval: time.Hour, Gather: 2 * time.Second}, st, blobs, nil,
		slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { sym.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	w := crash.NotifyingWriter{TelemetryWriter: db, S: sym}
	f := fault(symbols(t, elfO2), "run_cycle")
	const n = 5
	for i := range n {
		if err := w.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: fmt.Sprintf("d%d", i),
			ReceivedAt: time.Now(), Faults: []lodestone.Fault{*f}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // a round takes a few ms: without gathering, each commit had its own
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		faults, err := db.FindFaults(ctx, lodestone.TelemetryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, f := range faults {
			if f.CrashGroupID == nil {
				pending++
			}
		}
		if len(faults) == n && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d faults still unsymbolicated after 30s", pending, len(faults))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := st.rounds.Load(); r > 2 {
		t.Fatalf("%d rounds for %d commits in quick succession; want the first at once and the rest together", r, n)
	}
}
