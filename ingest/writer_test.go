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
	hold  chan struct{} // when non-nil, each write waits for a receive
	fail  string        // a device id that makes any write containing it fail
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

// releaseAll lets every held write through until none has come for two seconds.
func releaseAll(hold chan struct{}) {
	for {
		select {
		case hold <- struct{}{}:
		case <-time.After(2 * time.Second):
			return
		}
	}
}

func batch(dev string) []*lodestone.DeviceBatch {
	return []*lodestone.DeviceBatch{{DeviceID: dev, ReceivedAt: time.Now(),
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricCounter, Value: 1}}}}
}

func TestWriterGroupCommits(t *testing.T) {
	db := openDB(t)
	st := &observed{TelemetryWriter: db, hold: make(chan struct{})}
	w := ingest.NewWriter(st, ingest.WriterConfig{}, quiet)
	defer w.Close()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Write(context.Background(), batch(fmt.Sprintf("d%d", i)))
		}()
	}
	// Let the first transaction start and the rest queue behind it, then release everything.
	time.Sleep(100 * time.Millisecond)
	go releaseAll(st.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := st.calls.Load(); c >= n/2 {
		t.Fatalf("%d writes took %d transactions: not group-committed", n, c)
	}
	devs, _ := db.FindDevices(context.Background(), lodestone.DeviceFilter{Limit: 1000})
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
	w := ingest.NewWriter(st, ingest.WriterConfig{}, quiet)
	defer w.Close()
	results := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, dev := range []string{"a", "poison", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.Write(context.Background(), batch(dev))
			mu.Lock()
			results[dev] = err
			mu.Unlock()
		}()
	}
	time.Sleep(100 * time.Millisecond)
	go releaseAll(st.hold)
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
	w := ingest.NewWriter(st, ingest.WriterConfig{QueueSize: 1}, quiet)
	done := make(chan error, 2)
	go func() { done <- w.Write(context.Background(), batch("first")) }() // taken by the writer, held
	time.Sleep(50 * time.Millisecond)
	go func() { done <- w.Write(context.Background(), batch("second")) }() // fills the queue
	time.Sleep(50 * time.Millisecond)
	if err := w.Write(context.Background(), batch("third")); !errors.Is(err, ingest.ErrOverloaded) {
		t.Fatalf("full queue: %v, want ErrOverloaded", err)
	}
	// Close commits what is queued before returning.
	go func() {
		st.hold <- struct{}{}
		st.hold <- struct{}{}
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
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
	w := ingest.NewWriter(st, ingest.WriterConfig{Committers: 3}, quiet)
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
		deadline := time.Now().Add(5 * time.Second)
		for st.calls.Load() != int64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("write %d did not start while %d were in flight", i+1, i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	go releaseAll(st.hold)
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

// concurrency is a telemetry writer that records the most writes it saw in flight at once.
type concurrency struct {
	mu       sync.Mutex
	in, peak int
}

func (c *concurrency) WriteTelemetry(ctx context.Context, _ []*lodestone.DeviceBatch) error {
	c.mu.Lock()
	c.in++
	c.peak = max(c.peak, c.in)
	c.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	c.mu.Lock()
	c.in--
	c.mu.Unlock()
	return nil
}

func (c *concurrency) reset() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peak
	c.peak = 0
	return p
}

// SetCommitters bounds the transactions in flight while the writer runs, and raises the bound back.
func TestWriterSetCommitters(t *testing.T) {
	st := &concurrency{}
	w := ingest.NewWriter(st, ingest.WriterConfig{Committers: 2}, quiet)
	defer w.Close()
	burst := func() int {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				if err := w.Write(context.Background(), batch(fmt.Sprint("d", i))); err != nil {
					t.Error(err)
				}
			})
			time.Sleep(5 * time.Millisecond) // spread out, so that groups do not swallow every request
		}
		wg.Wait()
		return st.reset()
	}
	if p := burst(); p != 2 {
		t.Fatalf("%d transactions in flight at most, want 2", p)
	}
	w.SetCommitters(1)
	if p := burst(); p != 1 {
		t.Fatalf("after SetCommitters(1): %d in flight at most, want 1", p)
	}
	w.SetCommitters(5) // clamped to the 2 started
	if p := burst(); p != 2 {
		t.Fatalf("after SetCommitters(5): %d in flight at most, want 2", p)
	}
}
