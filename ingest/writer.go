package ingest

import (
	"context"
	"errors"
	"log/slog"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/groupcommit"
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

// Writer group-commits telemetry (see package groupcommit): many concurrent requests cost one commit (and one
// fsync), and a caller's Write returns only after its data is committed.
type Writer struct {
	gc     *groupcommit.Writer[*lodestone.DeviceBatch]
	store  lodestone.TelemetryWriter
	log    *slog.Logger
	events *publisher // nil without cfg.Events
}

// NewWriter starts the writer goroutines.
func NewWriter(store lodestone.TelemetryWriter, cfg WriterConfig, log *slog.Logger) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Writer{store: store, log: log}
	if cfg.Events != nil {
		w.events = newPublisher(cfg.Events, log)
	}
	gcfg := groupcommit.Config[*lodestone.DeviceBatch]{Name: "telemetry", QueueSize: cfg.QueueSize,
		MaxRecords: cfg.MaxRecords, Committers: cfg.Committers, Records: (*lodestone.DeviceBatch).Records,
		Commit: w.commit, Full: ErrOverloaded, Closed: ErrClosed, Logger: log}
	if w.events != nil {
		gcfg.Committed = w.published
	}
	w.gc = groupcommit.New(gcfg)
	return w
}

// Write stores batches and returns once they are committed. If ctx ends first it returns ctx's error, and the data
// may or may not be stored.
func (w *Writer) Write(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	return w.gc.Write(ctx, batches)
}

// SetCommitters sets how many transactions may be in flight at once, between 1 and WriterConfig.Committers. When
// several replicas share one database, their committers add up there, and fewer, larger groups each commit more.
func (w *Writer) SetCommitters(n int) { w.gc.SetCommitters(n) }

// commit stores one group; its error is what the group's callers get.
func (w *Writer) commit(ctx context.Context, batches []*lodestone.DeviceBatch) error {
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
	w.events.committed(append([]*lodestone.DeviceBatch(nil), batches...))
}

// Stats reports committed transactions and records since start.
func (w *Writer) Stats() (transactions, records uint64) { return w.gc.Stats() }

// Close stops accepting writes, commits everything queued and waits for the writer to finish.
func (w *Writer) Close() {
	w.gc.Close()
	if w.events != nil {
		w.events.close()
	}
}
