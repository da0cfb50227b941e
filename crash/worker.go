package crash

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// EventCrashRegression is the event published when a resolved crash group happens again on newer firmware.
const EventCrashRegression = "crash_regression"

// Store is what the workers need of the store.
type Store interface {
	lodestone.ELFService
	lodestone.CrashService
}

// Config tunes the workers.
type Config struct {
	Workers      int           // faults resolved at once; default 2
	Batch        int           // faults taken per round; default 100
	PollInterval time.Duration // backstop poll when nothing signals new faults; default 5s
	CacheSize    int           // symbol indexes kept; default 8
	Lease        time.Duration // how long a round's faults are claimed from other replicas' workers; default 1 min
	// Gather is the least time between the end of a round and the next one that a Notify starts; default 1 s,
	// at most PollInterval. Under steady ingest nearly every commit stores a fault, and a round per commit would
	// add two write transactions (claim, save) to each of ingest's: gathering makes them one per interval.
	Gather time.Duration
}

// Symbolicator runs the symbolication workers. Ingest never waits for it: it is told after a commit (Notify) and
// polls the store as a backstop, so faults stored while it was down or by another replica are picked up too.
type Symbolicator struct {
	cfg    Config
	store  Store
	cache  *indexCache
	events lodestone.EventPublisher // optional
	log    *slog.Logger
	wake   chan struct{}
}

// New returns a Symbolicator. events may be nil.
func New(cfg Config, store Store, blobs lodestone.BlobStore, events lodestone.EventPublisher,
	log *slog.Logger) *Symbolicator {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 8
	}
	if cfg.Gather <= 0 {
		cfg.Gather = time.Second
	}
	cfg.Gather = min(cfg.Gather, cfg.PollInterval)
	if log == nil {
		log = slog.Default()
	}
	return &Symbolicator{cfg: cfg, store: store, cache: newIndexCache(blobs, cfg.CacheSize), events: events,
		log: log, wake: make(chan struct{}, 1)}
}

// Notify tells the workers that faults (or an ELF) arrived. It never blocks.
func (s *Symbolicator) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Forget drops the cached index of a deleted ELF's blob.
func (s *Symbolicator) Forget(sha256 string) { s.cache.drop(sha256) }

// Run works until ctx ends.
func (s *Symbolicator) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		for {
			n, err := s.RunOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("symbolication round failed", "err", err)
				}
				break
			}
			if n < s.cfg.Batch {
				break
			}
		}
		done := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			// Let the faults of the next commits gather, so that one round takes them all.
			if wait := s.cfg.Gather - time.Since(done); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		case <-t.C:
		}
	}
}

// RunOnce symbolicates one batch of pending faults and returns how many it took.
func (s *Symbolicator) RunOnce(ctx context.Context) (int, error) {
	faults, err := s.store.ClaimFaults(ctx, s.cfg.Batch, s.cfg.Lease)
	if err != nil || len(faults) == 0 {
		return 0, err
	}
	results := make([]lodestone.Symbolication, len(faults))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.cfg.Workers, len(faults)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = s.symbolicate(ctx, faults[i])
			}
		}()
	}
	for i := range faults {
		next <- i
	}
	close(next)
	wg.Wait()
	regs, err := s.store.SaveSymbolications(ctx, results)
	if err != nil {
		return 0, err
	}
	for _, r := range regs {
		s.regression(ctx, r)
	}
	return len(faults), nil
}

// symbolicate resolves one fault against the ELF of the firmware its device ran: by build id, else by version;
// never some other firmware's ELF.
func (s *Symbolicator) symbolicate(ctx context.Context, f *lodestone.Fault) lodestone.Symbolication {
	e, err := s.store.MatchELF(ctx, f.FirmwareVersion, f.BuildID)
	if err != nil {
		if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			s.log.Warn("ELF lookup failed; fault filed without symbols", "fault", f.ID, "err", err)
		}
		return Symbolicate(f, nil, 0)
	}
	ix, err := s.cache.get(ctx, e.Blob.SHA256)
	if err != nil {
		s.log.Warn("ELF unusable; fault filed without symbols", "fault", f.ID, "elf", e.ID, "err", err)
		return Symbolicate(f, nil, 0)
	}
	return Symbolicate(f, ix, e.ID)
}

func (s *Symbolicator) regression(ctx context.Context, r lodestone.CrashRegression) {
	g := r.Group
	title := ""
	if g.Title != nil {
		title = *g.Title
	}
	s.log.Warn("crash regression: a resolved crash happened again on newer firmware", "crash_group", g.ID,
		"title", title, "firmware", r.FirmwareVersion, "resolved_in", g.ResolvedVersion, "device", r.DeviceID,
		"fault", r.FaultID)
	if s.events == nil {
		return
	}
	data, _ := json.Marshal(map[string]any{"crash_group_id": g.ID, "title": g.Title, "signature": g.Signature,
		"firmware_version": r.FirmwareVersion, "resolved_version": g.ResolvedVersion, "fault_id": r.FaultID,
		"occurrence_count": g.Occurrences})
	if err := s.events.Publish(ctx, lodestone.Event{Type: EventCrashRegression, DeviceID: r.DeviceID,
		Time: time.Now().UTC(), Data: data}); err != nil {
		s.log.Warn("publish crash regression", "err", err)
	}
}

// NotifyingWriter wraps the telemetry writer ingest uses and wakes the workers after a commit that stored
// faults. It adds a loop over the batches to the write path, nothing more.
type NotifyingWriter struct {
	lodestone.TelemetryWriter
	S *Symbolicator
}

// WriteTelemetry implements lodestone.TelemetryWriter.
func (w NotifyingWriter) WriteTelemetry(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	err := w.TelemetryWriter.WriteTelemetry(ctx, batches)
	if err == nil {
		for _, b := range batches {
			if len(b.Faults) > 0 {
				w.S.Notify()
				break
			}
		}
	}
	return err
}
