// Package retention deletes telemetry older than RETENTION_DAYS, as ferrite-server's hourly task does, but in
// small transactions (spec §8.30: ferrite deletes each table in one statement and holds its lock throughout).
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// DefaultBatch is how many rows of one table one transaction deletes.
const DefaultBatch = 5000

// Service runs purges and remembers the last one.
type Service struct {
	store lodestone.RetentionStore
	days  int
	batch int
	log   *slog.Logger
	now   func() time.Time
}

// New returns the service; days 0 disables purging (ferrite's RETENTION_DAYS=0).
func New(store lodestone.RetentionStore, days, batch int, log *slog.Logger) *Service {
	if batch <= 0 {
		batch = DefaultBatch
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: store, days: days, batch: batch, log: log, now: time.Now}
}

// Days is the configured retention; 0 keeps everything.
func (s *Service) Days() int { return s.days }

// LastRun returns the last purge on any replica, or an ENOTFOUND error.
func (s *Service) LastRun(ctx context.Context) (*lodestone.PurgeResult, error) {
	return s.store.LastRetentionRun(ctx)
}

// Purge deletes what is older than the retention now and records the run, also a failed or interrupted one.
func (s *Service) Purge(ctx context.Context) (*lodestone.PurgeResult, error) {
	if s.days <= 0 {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "retention is disabled (RETENTION_DAYS=0)")
	}
	start := s.now()
	r := &lodestone.PurgeResult{Cutoff: start.Add(-time.Duration(s.days) * 24 * time.Hour).UTC(), Started: start.UTC()}
	deleted, err := s.store.PurgeBefore(ctx, r.Cutoff, s.batch)
	r.Deleted, r.Finished = deleted, s.now().UTC()
	if err != nil {
		r.Error = "purge stopped: " + lodestone.ErrorMessage(err)
	}
	var total int64
	for _, n := range deleted {
		total += n
	}
	if total > 0 || err != nil {
		s.log.Info("retention purge", "cutoff", r.Cutoff, "deleted", total, "duration", r.Finished.Sub(start), "err", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := s.store.SaveRetentionRun(sctx, r); serr != nil && err == nil {
		err = serr
	}
	return r, err
}
