package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// ErrOverloaded is returned when the write queue is full; HTTP answers it with 503 and Retry-After so that
// gateways retry instead of dropping data.
var ErrOverloaded = lodestone.Errorf(lodestone.EUNAVAILABLE, "ingest queue is full, retry later")

// ErrClosed is returned after Close.
var ErrClosed = lodestone.Errorf(lodestone.EUNAVAILABLE, "server is shutting down")

// WriterConfig sizes the group-commit writer.
type WriterConfig struct {
	QueueSize  int // pending requests before ErrOverloaded; default 4096
	MaxRecords int // records per transaction; default 20000
	// Events receives the live events of committed data, after the commit; nil publishes nothing.
	Events lodestone.EventPublisher
	// Committers is how many transactions may be in flight at once; default 1. SQLite has one writer, so more
	// only queue on its lock; a server database (PostgreSQL) commits several groups in parallel, which hides the
	// network round trips of each. SetCommitters lowers it (and raises it back) while the writer runs.
	Committers int
}

// Writer group-commits telemetry: a committer goroutine takes every request waiting in the queue and writes them
// in one transaction, so many concurrent requests cost one commit (and one fsync). A caller's Write returns only after its
// data is committed.
type Writer struct {
	store  lodestone.TelemetryWriter
	log    *slog.Logger
	cfg    WriterConfig
	queue  chan *writeReq
	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}
	pool   sync.Pool
	events *publisher // nil without cfg.Events
	gate   gate       // bounds the committers in flight

	// Stats, read with Stats.
	statsMu      sync.Mutex
	transactions uint64
	committed    uint64
}

type writeReq struct {
	batches []*lodestone.DeviceBatch
	records int
	done    chan error
}

// NewWriter starts the writer goroutine.
func NewWriter(store lodestone.TelemetryWriter, cfg WriterConfig, log *slog.Logger) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 20000
	}
	if cfg.Committers <= 0 {
		cfg.Committers = 1
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Writer{store: store, log: log, cfg: cfg, queue: make(chan *writeReq, cfg.QueueSize),
		done: make(chan struct{})}
	w.pool.New = func() any { return &writeReq{done: make(chan error, 1)} }
	w.gate.init(cfg.Committers)
	if cfg.Events != nil {
		w.events = newPublisher(cfg.Events, log)
	}
	var wg sync.WaitGroup
	for range cfg.Committers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// Write stores batches and returns once they are committed. If ctx ends first it returns ctx's error, and the data
// may or may not be stored.
func (w *Writer) Write(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	if len(batches) == 0 {
		return nil
	}
	req := w.pool.Get().(*writeReq)
	req.batches = batches
	req.records = 0
	for _, b := range batches {
		req.records += b.Records()
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.queue <- req:
	default:
		w.mu.RUnlock()
		return ErrOverloaded
	}
	w.mu.RUnlock()
	select {
	case err := <-req.done:
		req.batches = nil
		w.pool.Put(req)
		return err
	case <-ctx.Done():
		// req is still owned by the writer goroutine; it is not returned to the pool.
		return ctx.Err()
	}
}

// SetCommitters sets how many transactions may be in flight at once, between 1 and WriterConfig.Committers. When
// several replicas share one database, their committers add up there, and fewer, larger groups each commit more.
func (w *Writer) SetCommitters(n int) {
	w.gate.set(max(1, min(n, w.cfg.Committers)))
}

func (w *Writer) run() {
	var group []*writeReq
	var all []*lodestone.DeviceBatch
	// The gate is entered after a request arrives, not before: a committer waiting for work must not count as a
	// transaction in flight, or lowering the limit would not take hold until both had committed once more.
	for first := range w.queue {
		w.gate.enter()
		group, all = w.commitGroup(first, group, all)
		w.gate.leave()
	}
}

// commitGroup commits first and every request waiting behind it, up to the transaction size. group and all are
// scratch space, returned for reuse.
func (w *Writer) commitGroup(first *writeReq, group []*writeReq, all []*lodestone.DeviceBatch) ([]*writeReq,
	[]*lodestone.DeviceBatch) {
	group = append(group[:0], first)
	records := first.records
	// Take everything already waiting, up to the transaction size.
drain:
	for records < w.cfg.MaxRecords {
		select {
		case r, ok := <-w.queue:
			if !ok {
				break drain
			}
			group = append(group, r)
			records += r.records
		default:
			break drain
		}
	}
	all = all[:0]
	for _, r := range group {
		all = append(all, r.batches...)
	}
	err := w.commit(all)
	if err != nil && len(group) > 1 {
		// One request's data must not fail the others: retry each request on its own.
		if !lodestone.StorageFull(err) {
			w.log.Warn("group commit failed, retrying requests one by one", "requests", len(group), "err", err)
		}
		for _, r := range group {
			rerr := w.commit(r.batches)
			if rerr == nil {
				w.published(r.batches)
			}
			r.done <- rerr
		}
	} else {
		if err == nil {
			w.published(all)
		}
		for _, r := range group {
			r.done <- err
		}
	}
	if err == nil {
		w.statsMu.Lock()
		w.transactions++
		w.committed += uint64(records)
		w.statsMu.Unlock()
	}
	return group, all
}

// gate lets at most limit committers in at once.
type gate struct {
	mu    sync.Mutex
	cond  sync.Cond
	limit int
	in    int
}

func (g *gate) init(limit int) {
	g.cond.L = &g.mu
	g.limit = limit
}

func (g *gate) enter() {
	g.mu.Lock()
	for g.in >= g.limit {
		g.cond.Wait()
	}
	g.in++
	g.mu.Unlock()
}

func (g *gate) leave() {
	g.mu.Lock()
	g.in--
	g.cond.Signal()
	g.mu.Unlock()
}

func (g *gate) set(limit int) {
	g.mu.Lock()
	g.limit = limit
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (w *Writer) commit(batches []*lodestone.DeviceBatch) error {
	// The write must finish even if the request that started it is gone; shutdown waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := w.store.WriteTelemetry(ctx, batches)
	switch {
	case err == nil:
	case lodestone.StorageFull(err): // every write fails alike: once a minute is enough; ErrorCode says unavailable
		lodestone.LogStorageFull(w.log, err, "batches", len(batches))
	case lodestone.ErrorCode(err) == lodestone.EINVALID:
		// The data, not the store: the service reports and logs it per device; a retry would fail the same way.
	case lodestone.ErrorCode(err) == lodestone.EINTERNAL:
		w.log.Error("telemetry write failed", "batches", len(batches), "err", err)
		// Storage trouble is worth a retry by the client, not a drop.
		return errors.Join(lodestone.Errorf(lodestone.EUNAVAILABLE, "storage unavailable, retry later"), err)
	default:
		w.log.Error("telemetry write failed", "batches", len(batches), "err", err)
	}
	return err
}

// published hands committed batches to the event publisher. It copies the slice, which the writer reuses.
func (w *Writer) published(batches []*lodestone.DeviceBatch) {
	if w.events != nil {
		w.events.committed(append([]*lodestone.DeviceBatch(nil), batches...))
	}
}

// Stats reports committed transactions and records since start.
func (w *Writer) Stats() (transactions, records uint64) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.transactions, w.committed
}

// Close stops accepting writes, commits everything queued and waits for the writer to finish.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	if w.events != nil {
		w.events.close()
	}
}
