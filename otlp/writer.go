package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/groupcommit"
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

// Writer group-commits log records (see package groupcommit): each committer takes every export waiting in the
// queue and stores them in one transaction, then answers them all, so an export is acknowledged only once its
// records are durable and many concurrent exports share one commit. Committed records are then published as
// events for live tails.
type Writer struct {
	gc     *groupcommit.Writer[*lodestone.LogRecord]
	store  lodestone.LogStore
	events lodestone.EventPublisher
	// batches, when set, is the bus shared by replicas: each commit is announced there as one EventLogBatch
	// instead of being published to events, and a Relay on every replica feeds its tails from the store.
	batches lodestone.EventPublisher
	log     *slog.Logger
	stats   *metrics
}

// NewWriter starts the committers. events may be nil.
func NewWriter(store lodestone.LogStore, events lodestone.EventPublisher, cfg WriterConfig, log *slog.Logger) *Writer {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 50000
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Writer{store: store, events: events, log: log}
	w.gc = groupcommit.New(groupcommit.Config[*lodestone.LogRecord]{Name: "log", QueueSize: cfg.QueueSize,
		MaxRecords: cfg.MaxRecords, Committers: cfg.Committers, Commit: w.commit, Committed: w.publish,
		Full: errQueueFull, Closed: errClosed, Logger: log})
	return w
}

// Write stores recs and returns once they are committed.
func (w *Writer) Write(ctx context.Context, recs []*lodestone.LogRecord) error {
	w.queueDepth()
	defer w.queueDepth()
	return w.gc.Write(ctx, recs)
}

// SetCommitters sets how many transactions may be in flight at once, between 1 and WriterConfig.Committers, as
// ingest.Writer.SetCommitters does for telemetry: replicas sharing one database share its commit capacity.
func (w *Writer) SetCommitters(n int) { w.gc.SetCommitters(n) }

func (w *Writer) queueDepth() {
	if w.stats != nil {
		w.stats.queueDepth.Set(float64(w.gc.Len()))
	}
}

// commit stores one group; its error is what the group's exporters get.
func (w *Writer) commit(ctx context.Context, recs []*lodestone.LogRecord) error {
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
func (w *Writer) Close() { w.gc.Close() }
