package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Pinger is a dependency that can tell whether it is reachable: the store and the blob store implement it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// readyTTL is how long one storage check answers /readyz: probes from several load balancers then cost one
// database round trip every two seconds at most, and a replica that cannot commit is out within about that.
const (
	readyTTL     = 2 * time.Second
	readyTimeout = 2 * time.Second
)

// readiness caches the result of the storage check behind /readyz. The mutex is held through a check, so
// concurrent probes wait for the one in flight (at most readyTimeout) instead of starting their own.
type readiness struct {
	db, blobs Pinger // nil: not checked
	ttl       time.Duration

	mu     sync.Mutex
	at     time.Time
	reason string // empty: ready
}

// blobPing checks a blob store without a Ping of its own: asking for a blob that does not exist must answer "not
// found"; any other answer means the store cannot be reached.
type blobPing struct{ b lodestone.BlobStore }

func (p blobPing) Ping(ctx context.Context) error {
	_, err := p.b.Stat(ctx, "0000000000000000000000000000000000000000000000000000000000000000")
	if err == nil || lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return nil
	}
	return err
}

func (s *Server) initReadiness() {
	r := &s.readiness
	r.ttl = s.cfg.ReadyCacheTTL
	if r.ttl == 0 {
		r.ttl = readyTTL
	}
	r.db = s.deps.DB
	if r.db == nil {
		r.db, _ = s.deps.Devices.(Pinger)
	}
	if p, ok := s.deps.Blobs.(Pinger); ok {
		r.blobs = p
	} else if s.deps.Blobs != nil {
		r.blobs = blobPing{s.deps.Blobs}
	}
}

// check returns why this replica cannot serve ("" when it can), checking storage at most once per ttl.
func (s *Server) readyReason(ctx context.Context) string {
	r := &s.readiness
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.at.IsZero() && now.Sub(r.at) < r.ttl {
		return r.reason
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	reason, what := "", ""
	var err error
	if r.db != nil {
		if err = r.db.Ping(ctx); err != nil {
			reason, what = "the database cannot be reached", "database"
		}
	}
	if err == nil && r.blobs != nil {
		if err = r.blobs.Ping(ctx); err != nil {
			reason, what = "the blob store cannot be reached", "blob store"
		}
	}
	if reason != r.reason {
		if err != nil {
			s.log.Error("not ready: storage check failed", "what", what, "err", err)
		} else {
			s.log.Info("ready again: storage answers")
		}
	}
	r.at, r.reason = time.Now(), reason
	return reason
}
