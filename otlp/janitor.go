package otlp

import (
	"context"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// RetentionConfig is how long logs and crash uploads are kept; detritus' defaults.
type RetentionConfig struct {
	LogsTTL    time.Duration // default 14 days
	CrashesTTL time.Duration // default 90 days
	Interval   time.Duration // default 1 hour
	// BlobGrace keeps unreferenced blobs younger than this: another replica sharing the blob store may have an
	// upload between its blob Put and its index commit. Default 1 hour; negative disables (tests).
	BlobGrace time.Duration
	// BlobInUse, if set, is asked before a crash blob is deleted, for blobs other features may share (identical
	// bytes are stored once).
	BlobInUse func(ctx context.Context, sha256 string) (bool, error)
}

func (c *RetentionConfig) setDefaults() {
	if c.LogsTTL <= 0 {
		c.LogsTTL = 14 * 24 * time.Hour
	}
	if c.CrashesTTL <= 0 {
		c.CrashesTTL = 90 * 24 * time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = time.Hour
	}
	if c.BlobGrace == 0 {
		c.BlobGrace = time.Hour
	}
}

// orphanSet holds blobs that may have lost their last reference: those of expired crash uploads and those
// stored by uploads that then failed. The janitor checks each again before deleting it.
type orphanSet struct {
	mu  sync.Mutex
	set map[string]struct{}
}

func (o *orphanSet) add(shas ...string) {
	if len(shas) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set == nil {
		o.set = map[string]struct{}{}
	}
	for _, s := range shas {
		o.set[s] = struct{}{}
	}
}

func (o *orphanSet) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.set))
	for s := range o.set {
		out = append(out, s)
	}
	clear(o.set)
	return out
}

// JanitorStats is what one cycle removed.
type JanitorStats struct {
	LogsDeleted, UploadsDeleted, BlobsDeleted, BytesFreed int64
}

func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(s.cfg.Retention.Interval)
	defer t.Stop()
	for {
		if st, err := s.RunJanitor(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention janitor failed", "err", err)
		} else if st.LogsDeleted+st.UploadsDeleted+st.BlobsDeleted > 0 {
			s.log.Info("retention janitor", "logs", st.LogsDeleted, "crash_uploads", st.UploadsDeleted,
				"blobs", st.BlobsDeleted, "bytes", st.BytesFreed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunJanitor runs one retention cycle: old log records, expired crash uploads, then the blobs nothing references
// any more. Blob deletion holds the upload lock, so an upload between its blob Put and its index commit either
// finishes first (and its reference is seen) or starts after (and stores its blob anew).
func (s *Server) RunJanitor(ctx context.Context) (st JanitorStats, err error) {
	start := time.Now()
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		}
		s.metrics.janitorCycles.Inc()
		s.metrics.janitorDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
		s.metrics.janitorLogs.Set(float64(st.LogsDeleted))
		s.metrics.janitorIndexes.Set(float64(st.UploadsDeleted))
		s.metrics.janitorLastBlob.Set(float64(st.BlobsDeleted))
		s.metrics.janitorBlobs.Add(float64(st.BlobsDeleted))
		s.metrics.janitorBytes.Add(float64(st.BytesFreed))
	}()
	now := s.now()
	if st.LogsDeleted, err = s.deps.Logs.DeleteLogsBefore(ctx, now.Add(-s.cfg.Retention.LogsTTL)); err != nil {
		return st, err
	}
	n, orphans, err := s.deps.Crashes.DeleteCrashUploadsBefore(ctx, now.Add(-s.cfg.Retention.CrashesTTL))
	if err != nil {
		return st, err
	}
	st.UploadsDeleted = n
	if err := s.sweepOrphans(ctx, now, &st); err != nil {
		return st, err
	}
	s.orphans.add(orphans...)
	cands := s.orphans.take()
	if len(cands) == 0 {
		return st, nil
	}
	s.gc.Lock()
	defer s.gc.Unlock()
	ref, err := s.deps.Crashes.CrashBlobReferenced(ctx, cands)
	if err != nil {
		s.orphans.add(cands...)
		return st, err
	}
	for i, sha := range cands {
		if ref[sha] {
			continue
		}
		keep, size, err := s.keepBlob(ctx, sha, now)
		if err != nil {
			s.orphans.add(cands[i:]...)
			return st, err
		}
		if keep {
			s.orphans.add(sha) // try again next cycle
			continue
		}
		if size < 0 {
			continue // already gone
		}
		if err := s.deps.Blobs.Delete(ctx, sha); err != nil {
			s.orphans.add(cands[i:]...)
			return st, err
		}
		st.BlobsDeleted++
		st.BytesFreed += size
	}
	return st, nil
}

// keepBlob reports whether a crash blob must stay although no upload references it: it is in its grace period
// or another feature uses it. size is -1 when the blob no longer exists.
func (s *Server) keepBlob(ctx context.Context, sha string, now time.Time) (bool, int64, error) {
	b, err := s.deps.Blobs.Open(ctx, sha)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return false, -1, nil
	} else if err != nil {
		return false, 0, err
	}
	mod, size := b.ModTime(), b.Ref().Size
	b.Close()
	if g := s.cfg.Retention.BlobGrace; g > 0 && now.Sub(mod) < g {
		return true, size, nil
	}
	if f := s.cfg.Retention.BlobInUse; f != nil {
		used, err := f(ctx, sha)
		if err != nil {
			return false, 0, err
		}
		if used {
			return false, -1, nil // someone else's now; forget it
		}
	}
	return false, size, nil
}
