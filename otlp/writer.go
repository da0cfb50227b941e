package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// errQueueFull and errClosed are what callers see when the writer cannot take more.
var (
	errQueueFull = errf(codeExhausted, "log writer queue is full")
	errClosed    = errf(codeUnavailable, "server is shutting down")
)

// WriterConfig sizes the group-commit log writer.
type WriterConfig struct {
	QueueSize  int // pending export requests; default 1024
	MaxRecords int // records per transaction; default 50000
	Committers int // transactions in flight; default 1 (SQLite has one writer)
}

// Writer group-commits log records: each committer takes every export waiting in the queue and stores them in one
// transaction, then answers them all, so an export is acknowledged only once its records are durable and many
// concurrent exports share one commit. Committed records are then published as events for live tails.
type Writer struct {
	store  lodestone.LogStore
	events lodestone.EventPublisher
	// batches, when set, is the bus shared by replicas: each commit is announced there as one EventLogBatch
	// instead of being published to events, and a Relay on every replica feeds its tails from the store.
	batches lodestone.EventPublisher
	log     *slog.Logger
	cfg     WriterConfig
	queue   chan *logReq
	mu      sync.RWMutex
	closed  bool
	done    chan struct{}
	stats   *metrics
}

type logReq struct {
	recs []*lodestone.LogRecord
	done chan error
}

// NewWriter starts the committers. events may be nil.
func NewWriter(store lodestone.LogStore, events lodestone.EventPublisher, cfg WriterConfig, log *slog.Logger) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 50000
	}
	if cfg.Committers <= 0 {
		cfg.Committers = 1
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Writer{store: store, events: events, log: log, cfg: cfg, queue: make(chan *logReq, cfg.QueueSize),
		done: make(chan struct{})}
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

// Write stores recs and returns once they are committed.
func (w *Writer) Write(ctx context.Context, recs []*lodestone.LogRecord) error {
	if len(recs) == 0 {
		return nil
	}
	req := &logReq{recs: recs, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	select {
	case w.queue <- req:
	default:
		w.mu.RUnlock()
		return errQueueFull
	}
	w.mu.RUnlock()
	if w.stats != nil {
		w.stats.queueDepth.Set(float64(len(w.queue)))
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	var group []*logReq
	var all []*lodestone.LogRecord
	for first := range w.queue {
		group = append(group[:0], first)
		n := len(first.recs)
	drain:
		for n < w.cfg.MaxRecords {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break drain
				}
				group = append(group, r)
				n += len(r.recs)
			default:
				break drain
			}
		}
		all = all[:0]
		for _, r := range group {
			all = append(all, r.recs...)
		}
		err := w.commit(all)
		if err != nil && len(group) > 1 {
			if !lodestone.StorageFull(err) {
				w.log.Warn("log group commit failed, retrying exports one by one", "exports", len(group), "err", err)
			}
			for _, r := range group {
				e := w.commit(r.recs)
				r.done <- e
				if e == nil {
					w.publish(r.recs)
				}
			}
			continue
		}
		for _, r := range group {
			r.done <- err
		}
		if w.stats != nil {
			w.stats.queueDepth.Set(float64(len(w.queue)))
		}
		if err == nil {
			w.publish(all)
		}
	}
}

func (w *Writer) commit(recs []*lodestone.LogRecord) error {
	// The write must finish even if the export that started it is gone; shutdown waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := w.store.WriteLogs(ctx, recs)
	if err != nil {
		if lodestone.StorageFull(err) { // every write fails alike: once a minute is enough
			lodestone.LogStorageFull(w.log, err, "records", len(recs))
		} else {
			w.log.Error("log write failed", "records", len(recs), "err", err)
		}
		return errors.Join(errf(codeUnavailable, "storage unavailable, retry later"), err)
	}
	if w.stats != nil {
		w.stats.logRecords.Add(float64(len(recs)))
		w.stats.commitSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// subscriberCounter is implemented by buses that know whether anyone listens; publishing is skipped otherwise,
// because rendering every record as JSON costs a good share of the ingest budget.
type subscriberCounter interface{ Subscribers() int }

// publish announces one committed batch: as an EventLogBatch on the shared bus when there is one, else as
// EventLogs events on events.
func (w *Writer) publish(recs []*lodestone.LogRecord) {
	if w.batches != nil {
		// The store hands back consecutive ids; one that does not (none on record) falls back to events.
		first, last := recs[0].ID, recs[len(recs)-1].ID
		if first > 0 && last-first+1 == int64(len(recs)) {
			data, _ := json.Marshal(lodestone.LogBatch{First: first, Last: last})
			ev := lodestone.Event{Type: lodestone.EventLogBatch, Time: time.Now().UTC(), Data: data}
			if err := w.batches.Publish(context.Background(), ev); err != nil {
				w.log.Warn("publish log batch event", "err", err)
			}
			return
		}
	}
	publishLogs(w.events, recs, w.log)
}

// publishLogs sends records to events as one EventLogs event per device, in their order, unless events counts
// no subscriber.
func publishLogs(events lodestone.EventPublisher, recs []*lodestone.LogRecord, log *slog.Logger) {
	if events == nil {
		return
	}
	if sc, ok := events.(subscriberCounter); ok && sc.Subscribers() == 0 {
		return
	}
	byDev := map[source][]lodestone.LogRecordJSON{}
	var order []source
	for _, r := range recs {
		k := source{r.Project, r.DeviceID}
		if _, ok := byDev[k]; !ok {
			order = append(order, k)
		}
		byDev[k] = append(byDev[k], r.JSON())
	}
	now := time.Now().UTC()
	for _, k := range order {
		data, err := json.Marshal(byDev[k])
		if err != nil {
			continue
		}
		ev := lodestone.Event{Type: lodestone.EventLogs, DeviceID: k.device, Time: now, Data: data}
		if err := events.Publish(context.Background(), ev); err != nil {
			log.Warn("publish log event", "err", err)
		}
	}
}

// Close stops accepting writes, commits everything queued and waits for the committers.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}
