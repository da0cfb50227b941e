package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lodestone-fleet/lodestone"
)

// Limits configures rate limiting. Ingest (and /auth/*) is limited per client IP and per device key when RPS > 0,
// as ferrite's RATE_LIMIT_RPS; failed authentication is always limited per client IP and, for passwords, per
// (client IP, user).
type Limits struct {
	RPS float64 // requests per second per client IP and per device key on ingest; 0 disables
	// Burst is the bucket size; 0 means ferrite's max(10·RPS, 10).
	Burst int
	// AuthFailures per second per client IP (default 0.2, one every 5 s) with AuthFailureBurst (default 20)
	// failures allowed at once; each (IP, user) has the same rate and at most 5 at once. A password check that
	// would cost a hash is refused with 429, unchecked, once its (IP, user) is out of failures, or its IP is and
	// the user has not signed in from it within a day. Device keys, API tokens and the ingest key are checked
	// first (they are cheap): a valid one always passes, a wrong one past the limit gets 429. Negative disables.
	AuthFailures     float64
	AuthFailureBurst int
}

// Defaults for Limits.
const (
	defaultAuthFailures     = 0.2
	defaultAuthFailureBurst = 20
	bucketIdle              = 5 * time.Minute // buckets unused this long are dropped
	sweepEvery              = time.Minute
	maxBuckets              = 100_000 // beyond this, new clients share no bucket and are not limited
)

// codeRateLimited is the error code of 429 answers.
const codeRateLimited = "rate_limited"

// buckets is a set of token buckets keyed by client IP or device, with lazy eviction of idle ones.
type buckets struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	m         map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(perSecond float64, burst int) *buckets {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = max(int(math.Ceil(10*perSecond)), 10)
	}
	return &buckets{limit: rate.Limit(perSecond), burst: burst, m: map[string]*bucket{}}
}

func (b *buckets) get(key string, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastSweep) >= sweepEvery {
		for k, v := range b.m {
			if now.Sub(v.last) >= bucketIdle {
				delete(b.m, k)
			}
		}
		b.lastSweep = now
	}
	e, ok := b.m[key]
	if !ok {
		if len(b.m) >= maxBuckets {
			return nil
		}
		e = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.m[key] = e
	}
	e.last = now
	return e.lim
}

// size reports how many buckets are kept (tests).
func (b *buckets) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// allow takes one token for key, sets the X-RateLimit-* headers and, when the bucket is empty, returns a
// rate-limited error with Retry-After set.
func (b *buckets) allow(w http.ResponseWriter, key string, now time.Time) error {
	if b == nil {
		return nil
	}
	lim := b.get(key, now)
	if lim == nil {
		return nil
	}
	ok := lim.AllowN(now, 1)
	setRateHeaders(w, b, lim, now)
	if !ok {
		return tooMany(w, lim, now)
	}
	return nil
}

// blocked reports, without taking a token, whether key's bucket is empty.
func (b *buckets) blocked(w http.ResponseWriter, key string, now time.Time) error {
	if b == nil {
		return nil
	}
	lim := b.get(key, now)
	if lim == nil || lim.TokensAt(now) >= 1 {
		return nil
	}
	return tooMany(w, lim, now)
}

// take spends one token for key after a cheap check failed; an empty bucket is a rate-limited error. Taking and
// testing is one step, so concurrent failures cannot overdraw the bucket.
func (b *buckets) take(w http.ResponseWriter, key string, now time.Time) error {
	if b == nil {
		return nil
	}
	lim := b.get(key, now)
	if lim == nil || lim.AllowN(now, 1) {
		return nil
	}
	return tooMany(w, lim, now)
}

// reserve takes one token for key before an expensive check (a password hash), so that concurrent checks cannot
// all pass a "still has tokens" test before any of them fails. The returned undo gives the token back when the
// check passes: only failures are counted. An empty bucket is a rate-limited error and takes nothing.
func (b *buckets) reserve(w http.ResponseWriter, key string, now time.Time) (undo func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	lim := b.get(key, now)
	if lim == nil {
		return func() {}, nil
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() || res.DelayFrom(now) > 0 {
		res.CancelAt(now)
		return nil, tooMany(w, lim, now)
	}
	// Cancelled as of the reservation: x/time/rate gives nothing back for a reservation whose time to act has
	// passed, and an admitted one acts at once.
	return func() { res.CancelAt(now) }, nil
}

func setRateHeaders(w http.ResponseWriter, b *buckets, lim *rate.Limiter, now time.Time) {
	h := w.Header()
	tokens := lim.TokensAt(now)
	h.Set("X-RateLimit-Limit", strconv.Itoa(b.burst))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(int(tokens), 0)))
	// Seconds until the bucket is full again.
	reset := math.Ceil((float64(b.burst) - tokens) / float64(b.limit))
	h.Set("X-RateLimit-Reset", strconv.Itoa(max(int(reset), 0)))
}

func tooMany(w http.ResponseWriter, lim *rate.Limiter, now time.Time) error {
	wait := math.Ceil((1 - lim.TokensAt(now)) / float64(lim.Limit()))
	w.Header().Set("Retry-After", strconv.Itoa(max(int(wait), 1)))
	return lodestone.Errorf(codeRateLimited, "Rate limit exceeded")
}
