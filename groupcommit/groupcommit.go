// Package groupcommit commits many concurrent requests in few transactions. Telemetry (ingest) and log records
// (otlp) share it: each Write waits in a queue, a committer takes every request waiting there and stores them in
// one transaction, then answers them all, so a caller is acknowledged only once its data is committed and many
// concurrent callers pay for one commit (and one fsync).
package groupcommit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Config sizes a Writer and plugs in what differs between the data it stores.
type Config[T any] struct {
	Name       string // what the items are, for log messages ("telemetry", "log")
	QueueSize  int    // requests waiting before Write fails with Full; default 1024
	MaxRecords int    // records per transaction; default 20000
	// Committers is how many transactions may be in flight at once; default 1. SQLite has one writer, so more
	// only queue on its lock; a server database (PostgreSQL) commits several groups in parallel, which hides the
	// network round trips of each. SetCommitters lowers it (and raises it back) while the writer runs.
	Committers int
	// Records counts the records of an item, the unit of MaxRecords; nil counts each item as one record.
	Records func(T) int
	// Commit stores items in one transaction. Its error is what the callers whose items these are get back.
	Commit func(ctx context.Context, items []T) error
	// Committed, when set, is called after items were committed and their callers answered. items is reused
	// afterwards: copy it to keep it.
	Committed func(items []T)
	// Full and Closed are what Write returns when the queue is full and after Close.
	Full, Closed error
	// CommitTimeout bounds each Commit; default 60s. A commit runs to its end even if its callers have gone,
	// because shutdown waits for it.
	CommitTimeout time.Duration
	Logger        *slog.Logger
}

// Writer is a group-commit queue over Config.Commit. Its methods are safe for concurrent use.
type Writer[T any] struct {
	cfg    Config[T]
	queue  chan *request[T]
	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}
	pool   sync.Pool
	gate   gate // bounds the committers in flight

	statsMu      sync.Mutex
	transactions uint64
	committed    uint64
}

type request[T any] struct {
	items   []T
	records int
	done    chan error
}

// New starts cfg.Committers committers. cfg.Commit is required.
func New[T any](cfg Config[T]) *Writer[T] {
	if cfg.Commit == nil {
		panic("groupcommit: Config.Commit is required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 20000
	}
	if cfg.Committers <= 0 {
		cfg.Committers = 1
	}
	if cfg.Records == nil {
		cfg.Records = func(T) int { return 1 }
	}
	if cfg.Full == nil {
		cfg.Full = errors.New("groupcommit: queue is full")
	}
	if cfg.Closed == nil {
		cfg.Closed = errors.New("groupcommit: writer is closed")
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer[T]{cfg: cfg, queue: make(chan *request[T], cfg.QueueSize), done: make(chan struct{})}
	w.pool.New = func() any { return &request[T]{done: make(chan error, 1)} }
	w.gate.init(cfg.Committers)
	var wg sync.WaitGroup
	for range cfg.Committers {
		wg.Go(w.run)
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// Write commits items and returns once they are committed, with Commit's error. If ctx ends first it returns
// ctx's error, and the items may or may not be stored. It fails at once with Config.Full when the queue is full
// and with Config.Closed after Close.
func (w *Writer[T]) Write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	req := w.pool.Get().(*request[T])
	req.items = items
	req.records = 0
	for _, it := range items {
		req.records += w.cfg.Records(it)
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		w.release(req)
		return w.cfg.Closed
	}
	select {
	case w.queue <- req:
	default:
		w.mu.RUnlock()
		w.release(req)
		return w.cfg.Full
	}
	w.mu.RUnlock()
	select {
	case err := <-req.done:
		w.release(req)
		return err
	case <-ctx.Done():
		// req is still owned by a committer; it is not returned to the pool.
		return ctx.Err()
	}
}

func (w *Writer[T]) release(req *request[T]) {
	req.items = nil
	w.pool.Put(req)
}

// SetCommitters sets how many transactions may be in flight at once, between 1 and Config.Committers. When
// several replicas share one database, their committers add up there, and fewer, larger groups each commit more.
func (w *Writer[T]) SetCommitters(n int) {
	w.gate.set(max(1, min(n, w.cfg.Committers)))
}

// Len is the number of requests waiting in the queue.
func (w *Writer[T]) Len() int { return len(w.queue) }

// Waiting is the number of committers holding a group that wait for their turn (see SetCommitters).
func (w *Writer[T]) Waiting() int {
	w.gate.mu.Lock()
	defer w.gate.mu.Unlock()
	return w.gate.waiting
}

// Stats reports the transactions committed as one group and their records since start; requests retried one by
// one after a failed group are not counted.
func (w *Writer[T]) Stats() (transactions, records uint64) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.transactions, w.committed
}

// Close stops accepting writes, commits everything queued and waits for the committers to finish.
func (w *Writer[T]) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer[T]) run() {
	var group []*request[T]
	var all []T
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
func (w *Writer[T]) commitGroup(first *request[T], group []*request[T], all []T) ([]*request[T], []T) {
	group = append(group[:0], first)
	records := first.records
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
	clear(all) // drop references to the previous group's items
	all = all[:0]
	for _, r := range group {
		all = append(all, r.items...)
	}
	err := w.commit(all)
	if err != nil && len(group) > 1 {
		// One request's data must not fail the others: retry each request on its own.
		if !lodestone.StorageFull(err) { // the Commit functions log a full store once a minute
			w.cfg.Logger.Warn(w.cfg.Name+" group commit failed, retrying requests one by one",
				"requests", len(group), "err", err)
		}
		for _, r := range group {
			items := r.items
			rerr := w.commit(items)
			r.done <- rerr
			if rerr == nil && w.cfg.Committed != nil {
				w.cfg.Committed(items)
			}
		}
		return group, all
	}
	for _, r := range group {
		r.done <- err
	}
	if err == nil {
		w.statsMu.Lock()
		w.transactions++
		w.committed += uint64(records)
		w.statsMu.Unlock()
		if w.cfg.Committed != nil {
			w.cfg.Committed(all)
		}
	}
	return group, all
}

func (w *Writer[T]) commit(items []T) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CommitTimeout)
	defer cancel()
	return w.cfg.Commit(ctx, items)
}

// gate lets at most limit committers in at once.
type gate struct {
	mu      sync.Mutex
	cond    sync.Cond
	limit   int
	in      int
	waiting int
}

func (g *gate) init(limit int) {
	g.cond.L = &g.mu
	g.limit = limit
}

func (g *gate) enter() {
	g.mu.Lock()
	for g.in >= g.limit {
		g.waiting++
		g.cond.Wait()
		g.waiting--
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
