package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// waitFor fails the test unless cond holds within timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// heldLogs wraps a real log store: every write waits until release is closed, and the most writes in flight at
// once are recorded.
type heldLogs struct {
	lodestone.LogStore
	release       chan struct{}
	mu            sync.Mutex
	calls, in, pk int
}

func (h *heldLogs) WriteLogs(ctx context.Context, recs []*lodestone.LogRecord) error {
	h.mu.Lock()
	h.calls++
	h.in++
	h.pk = max(h.pk, h.in)
	h.mu.Unlock()
	<-h.release
	h.mu.Lock()
	h.in--
	h.mu.Unlock()
	return h.LogStore.WriteLogs(ctx, recs)
}

func (h *heldLogs) state() (calls, in, peak int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls, h.in, h.pk
}

func logStores(t *testing.T) []struct {
	name string
	open func(t *testing.T) lodestone.LogStore
} {
	return []struct {
		name string
		open func(t *testing.T) lodestone.LogStore
	}{
		{"sqlite", func(t *testing.T) lodestone.LogStore {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
		{"postgres", func(t *testing.T) lodestone.LogStore {
			db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
	}
}

func logRec(dev string) []*lodestone.LogRecord {
	now := time.Now().UTC()
	return []*lodestone.LogRecord{{Project: "p", DeviceID: dev, Time: now, ReceivedAt: now, Severity: 9,
		Body: `"hello"`}}
}

// answered waits for n results on errs, failing on an error or after 10 seconds.
func answered(t *testing.T, errs <-chan error, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a log write was not answered within 10s")
		}
	}
}

// The log writer honours the committer bound that replicas sharing a database set (SetCommitters), as the
// telemetry writer does: with one committer allowed, a second group waits instead of opening a second
// transaction, and raising the bound lets it in.
func TestLogWriterHonoursCommitterBound(t *testing.T) {
	for _, tc := range logStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			st := &heldLogs{LogStore: db, release: make(chan struct{})}
			w := NewWriter(st, nil, WriterConfig{Committers: 2}, slog.New(slog.DiscardHandler))
			defer w.Close()
			defer close(st.release)
			errs := make(chan error, 3)
			write := func(dev string) { errs <- w.Write(context.Background(), logRec(dev)) }
			inFlight := func(n int) func() bool { return func() bool { _, in, _ := st.state(); return in == n } }

			w.SetCommitters(1)
			go write("a")
			waitFor(t, 10*time.Second, "a did not reach the store", inFlight(1))
			go write("b")
			waitFor(t, 10*time.Second, "b's committer did not wait for its turn", func() bool { return w.gc.Waiting() == 1 })
			if _, in, _ := st.state(); in != 1 {
				t.Fatalf("after SetCommitters(1): %d log transactions in flight, want 1", in)
			}
			w.SetCommitters(5) // clamped to the 2 started
			waitFor(t, 10*time.Second, "b did not start once the bound was raised", inFlight(2))
			go write("c")
			waitFor(t, 10*time.Second, "c did not queue behind two commits", func() bool { return w.gc.Len() == 1 })
			st.release <- struct{}{} // frees one commit; c takes its place
			waitFor(t, 10*time.Second, "c did not start", func() bool { c, _, _ := st.state(); return c == 3 })
			if _, _, peak := st.state(); peak != 2 {
				t.Fatalf("%d log transactions in flight at most, want 2", peak)
			}
			st.release <- struct{}{}
			st.release <- struct{}{}
			answered(t, errs, 3)
			got, err := db.FindLogs(context.Background(), lodestone.LogFilter{Project: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("%d records stored, want 3", len(got))
			}
		})
	}
}

// Exports that queue behind a commit share the next transaction; a full queue answers errQueueFull at once and
// Close commits what is queued.
func TestLogWriterGroupsOverloadAndClose(t *testing.T) {
	for _, tc := range logStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			st := &heldLogs{LogStore: db, release: make(chan struct{})}
			w := NewWriter(st, nil, WriterConfig{QueueSize: 3}, slog.New(slog.DiscardHandler))
			errs := make(chan error, 4)
			go func() { errs <- w.Write(context.Background(), logRec("first")) }()
			waitFor(t, 10*time.Second, "the first export did not reach the store", func() bool { c, _, _ := st.state(); return c == 1 })
			for i := range 3 {
				go func() { errs <- w.Write(context.Background(), logRec(fmt.Sprint("q", i))) }()
			}
			waitFor(t, 10*time.Second, "three exports did not queue", func() bool { return w.gc.Len() == 3 })
			if err := w.Write(context.Background(), logRec("over")); !errors.Is(err, errQueueFull) {
				t.Fatalf("full queue: %v, want errQueueFull", err)
			}
			closed := make(chan struct{})
			go func() {
				w.Close()
				close(closed)
			}()
			close(st.release)
			answered(t, errs, 4)
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return")
			}
			if c, _, _ := st.state(); c != 2 {
				t.Fatalf("4 exports took %d transactions, want 2", c)
			}
			if err := w.Write(context.Background(), logRec("late")); !errors.Is(err, errClosed) {
				t.Fatalf("write after Close: %v, want errClosed", err)
			}
			got, err := db.FindLogs(context.Background(), lodestone.LogFilter{Project: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 4 {
				t.Fatalf("%d records stored, want 4", len(got))
			}
		})
	}
}
