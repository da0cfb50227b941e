package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

var quiet = slog.New(slog.DiscardHandler)

func openDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// observed wraps a real store to count transactions and optionally hold or fail them.
type observed struct {
	lodestone.TelemetryWriter
	calls atomic.Int64
	hold  chan struct{} // when non-nil, each write waits until it is closed
	once  sync.Once
	fail  string // a device id that makes any write containing it fail
}

func (o *observed) WriteTelemetry(ctx context.Context, b []*lodestone.DeviceBatch) error {
	o.calls.Add(1)
	if o.hold != nil {
		<-o.hold
	}
	for _, x := range b {
		if o.fail != "" && x.DeviceID == o.fail {
			return errors.New("simulated storage failure")
		}
	}
	return o.TelemetryWriter.WriteTelemetry(ctx, b)
}

// release lets every held write through, now and later.
func (o *observed) release() { o.once.Do(func() { close(o.hold) }) }

// startWriter starts a writer on st whose writes are released and which is closed when the test ends, also
// when it fails while writes are held.
func startWriter(t *testing.T, st *observed, cfg ingest.WriterConfig) *ingest.Writer {
	w := ingest.NewWriter(st, cfg, quiet)
	t.Cleanup(func() {
		st.release()
		w.Close()
	})
	return w
}

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

// held waits until n writes have reached the store (and are held there) and queued requests wait behind them.
func held(t *testing.T, w *ingest.Writer, st *observed, n int64, queued int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d writes in the store (have %d), %d queued (have %d)", n,
		st.calls.Load(), queued, ingest.Queued(w)), func() bool {
		return st.calls.Load() == n && ingest.Queued(w) == queued
	})
}

func batch(dev string) []*lodestone.DeviceBatch {
	return []*lodestone.DeviceBatch{{DeviceID: dev, ReceivedAt: time.Now(),
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricCounter, Value: 1}}}}
}

func TestWriterGroupCommits(t *testing.T) {
	db := openDB(t)
	st := &observed{TelemetryWriter: db, hold: make(chan struct{})}
	w := startWriter(t, st, ingest.WriterConfig{})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- w.Write(context.Background(), batch(fmt.Sprintf("d%d", i))) })
		if i == 0 {
			held(t, w, st, 1, 0) // the first transaction starts, and the rest queue behind it
		}
	}
	held(t, w, st, 1, n-1)
	st.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := st.calls.Load(); c != 2 {
		t.Fatalf("%d writes took %d transactions, want 2: one, then the %d queued behind it", n, c, n-1)
	}
	devs, err := db.FindDevices(context.Background(), lodestone.DeviceFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != n {
		t.Fatalf("%d devices stored, want %d", len(devs), n)
	}
	if tx, recs := w.Stats(); tx != uint64(st.calls.Load()) || recs != 2*n {
		t.Fatalf("stats: %d transactions %d records", tx, recs)
	}
}

func TestWriterIsolatesAFailingRequest(t *testing.T) {
	db := openDB(t)
	st := &observed{TelemetryWriter: db, hold: make(chan struct{}), fail: "poison"}
	w := startWriter(t, st, ingest.WriterConfig{})
	results := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, dev := range []string{"a", "poison", "b", "c"} {
		wg.Go(func() {
			err := w.Write(context.Background(), batch(dev))
			mu.Lock()
			results[dev] = err
			mu.Unlock()
		})
		if i == 0 {
			held(t, w, st, 1, 0)
		}
	}
	// a is held in the store, the other three queue behind it and are committed as one group, which fails
	// because of the poison and is retried one by one.
	held(t, w, st, 1, 3)
	st.release()
	wg.Wait()
	if results["poison"] == nil {
		t.Fatal("the failing request was acknowledged")
	}
	if lodestone.ErrorCode(results["poison"]) != lodestone.EUNAVAILABLE {
		t.Fatalf("storage failure should ask for a retry, got %v", results["poison"])
	}
	for _, dev := range []string{"a", "b", "c"} {
		if results[dev] != nil {
			t.Fatalf("%s failed with its neighbour: %v", dev, results[dev])
		}
		if _, err := db.FindDeviceByID(context.Background(), dev); err != nil {
			t.Fatalf("%s not stored: %v", dev, err)
		}
	}
}

func TestWriterOverloadAndClose(t *testing.T) {
	db := openDB(t)
	st := &observed{TelemetryWriter: db, hold: make(chan struct{})}
	w := startWriter(t, st, ingest.WriterConfig{QueueSize: 1})
	done := make(chan error, 2)
	go func() { done <- w.Write(context.Background(), batch("first")) }() // taken by the writer, held
	held(t, w, st, 1, 0)
	go func() { done <- w.Write(context.Background(), batch("second")) }() // fills the queue
	held(t, w, st, 1, 1)
	if err := w.Write(context.Background(), batch("third")); !errors.Is(err, ingest.ErrOverloaded) {
		t.Fatalf("full queue: %v, want ErrOverloaded", err)
	}
	// Close commits what is queued before returning.
	closed := make(chan struct{})
	go func() {
		w.Close()
		close(closed)
	}()
	st.release()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a queued write was not answered")
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := w.Write(context.Background(), batch("late")); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	for _, dev := range []string{"first", "second"} {
		if _, err := db.FindDeviceByID(context.Background(), dev); err != nil {
			t.Fatalf("%s lost: %v", dev, err)
		}
	}
}

func TestWriterCommittersRunInParallel(t *testing.T) {
	db := openDB(t)
	st := &observed{TelemetryWriter: db, hold: make(chan struct{})}
	w := startWriter(t, st, ingest.WriterConfig{Committers: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Write(context.Background(), batch(fmt.Sprintf("p%d", i)))
		}()
		// Each write must reach the store while the earlier ones are still held: three committers, three
		// transactions in flight.
		waitFor(t, 10*time.Second, fmt.Sprintf("write %d did not start while %d were in flight", i+1, i),
			func() bool { return st.calls.Load() == int64(i+1) })
	}
	st.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	for i := range 3 {
		if _, err := db.FindDeviceByID(context.Background(), fmt.Sprintf("p%d", i)); err != nil {
			t.Fatalf("device p%d: %v", i, err)
		}
	}
}

// gauge is a telemetry writer that holds every write until release is closed and records the most writes it saw
// in flight at once.
type gauge struct {
	release  chan struct{}
	mu       sync.Mutex
	in, peak int
}

func (g *gauge) WriteTelemetry(ctx context.Context, _ []*lodestone.DeviceBatch) error {
	g.mu.Lock()
	g.in++
	g.peak = max(g.peak, g.in)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.in--
	g.mu.Unlock()
	return nil
}

func (g *gauge) state() (in, peak int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.in, g.peak
}

// SetCommitters bounds the transactions in flight while the writer runs, and raises the bound back.
func TestWriterSetCommitters(t *testing.T) {
	st := &gauge{release: make(chan struct{})}
	w := ingest.NewWriter(st, ingest.WriterConfig{Committers: 2}, quiet)
	released := false
	defer func() {
		if !released { // a failure above: let the held writes go, or Close would wait for them forever
			close(st.release)
		}
		w.Close()
	}()
	errs := make(chan error, 3)
	write := func(dev string) { errs <- w.Write(context.Background(), batch(dev)) }
	inFlight := func(n int) func() bool { return func() bool { in, _ := st.state(); return in == n } }

	w.SetCommitters(1)
	go write("a")
	waitFor(t, 10*time.Second, "a did not reach the store", inFlight(1))
	go write("b")
	waitFor(t, 10*time.Second, "b's committer did not wait for its turn", func() bool { return ingest.Waiting(w) == 1 })
	if in, _ := st.state(); in != 1 {
		t.Fatalf("after SetCommitters(1): %d in flight, want 1", in)
	}
	w.SetCommitters(5) // clamped to the 2 started
	waitFor(t, 10*time.Second, "b did not start once the bound was raised", inFlight(2))
	go write("c")
	waitFor(t, 10*time.Second, "c did not queue behind two commits", func() bool { return ingest.Queued(w) == 1 })
	close(st.release)
	released = true
	for range 3 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a write was not answered")
		}
	}
	if _, peak := st.state(); peak != 2 {
		t.Fatalf("%d transactions in flight at most, want 2", peak)
	}
}
