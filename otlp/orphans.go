package otlp

import (
	"context"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// orphanBatch is how many blobs the sweep checks against the index per query.
const orphanBatch = 500

// sweepOrphans walks the whole blob store and deletes the blobs that nothing references: no crash upload, and
// (asked through Retention.BlobInUse) no firmware artifact or ELF file. These are left by cleanups that failed
// (a Delete error after a refused upload), by a crash between a blob Put and its index commit, or by a process
// that stopped before its janitor ran. Blobs younger than the grace period stay, since another replica or
// feature may be between its Put and its commit; without BlobInUse nothing is swept, as firmware and ELF blobs
// could not be told from orphans.
func (s *Server) sweepOrphans(ctx context.Context, now time.Time, st *JanitorStats) error {
	if s.cfg.Retention.BlobInUse == nil || s.cfg.Retention.BlobGrace < 0 {
		return nil
	}
	var batch []string
	flush := func() error {
		defer func() { batch = batch[:0] }()
		ref, err := s.deps.Crashes.CrashBlobReferenced(ctx, batch)
		if err != nil {
			return err
		}
		for _, sha := range batch {
			if ref[sha] {
				continue
			}
			if err := s.deleteOrphan(ctx, sha, now, st); err != nil {
				return err
			}
		}
		return nil
	}
	err := s.deps.Blobs.Walk(ctx, func(r lodestone.BlobRef) error {
		batch = append(batch, r.SHA256)
		if len(batch) < orphanBatch {
			return nil
		}
		return flush()
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	return err
}

// deleteOrphan deletes one blob that no crash upload referenced when the batch was checked, unless it is in
// its grace period or in use by another feature. The upload lock and a second look at the crash index close the
// window in which an upload commits a reference to it meanwhile.
func (s *Server) deleteOrphan(ctx context.Context, sha string, now time.Time, st *JanitorStats) error {
	keep, size, err := s.keepBlob(ctx, sha, now)
	if err != nil || keep || size < 0 {
		return err
	}
	s.gc.Lock()
	defer s.gc.Unlock()
	ref, err := s.deps.Crashes.CrashBlobReferenced(ctx, []string{sha})
	if err != nil || ref[sha] {
		return err
	}
	if err := s.deps.Blobs.Delete(ctx, sha); err != nil {
		return err
	}
	s.log.Info("deleted an orphan blob", "sha256", sha, "bytes", size)
	st.BlobsDeleted++
	st.BytesFreed += size
	return nil
}
