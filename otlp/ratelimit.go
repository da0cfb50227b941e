package otlp

import (
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone/internal/lru"
)

// maxBuckets bounds the buckets of one limiter. Keys carry a client-supplied project and install id, so without a
// bound a client inventing ids would grow the map forever; about 100 bytes each, this is a few megabytes.
const maxBuckets = 1 << 16

// limiter is detritus' token bucket (§5.1), keyed by endpoint, token id and source, with two additions: a bucket
// that has been idle long enough to be full again is indistinguishable from a new one, so it is evicted; and at
// most maxBuckets are kept, the least recently used going first. An evicted bucket comes back full, which gives a
// client no more than inventing a new install id already does.
type limiter struct {
	perMinute, burst float64
	now              func() time.Time

	mu      sync.Mutex
	buckets *lru.Cache[bucketKey, *bucket] // least recently used = oldest last
}

type bucketKey struct{ token, source string }

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute, burst float64, now func() time.Time) *limiter {
	return newLimiterSize(perMinute, burst, now, maxBuckets)
}

func newLimiterSize(perMinute, burst float64, now func() time.Time, size int) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{perMinute: perMinute, burst: burst, now: now, buckets: lru.New[bucketKey, *bucket](size)}
}

// allow spends one unit of the bucket for (token, source) if it holds one.
func (l *limiter) allow(token, source string) bool {
	if l.burst <= 0 {
		return false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	k := bucketKey{token, source}
	b, ok := l.buckets.Get(k)
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets.Add(k, b)
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(l.burst, b.tokens+el*l.perMinute/60)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// refillTime is how long an empty bucket takes to fill; after that long idle a bucket equals a new one.
func (l *limiter) refillTime() time.Duration {
	if l.perMinute <= 0 {
		return 0 // never refills: keep buckets (up to the size bound), or an evicted one would come back full
	}
	return time.Duration(l.burst / l.perMinute * float64(time.Minute))
}

// sweep drops the buckets idle for a full refill time. The cache is ordered by last use, so it stops at the
// first bucket still in use and costs nothing when there is nothing to drop.
func (l *limiter) sweep(now time.Time) {
	idle := l.refillTime()
	if idle == 0 {
		return
	}
	for {
		_, b, ok := l.buckets.Oldest()
		if !ok || now.Sub(b.last) < idle {
			return
		}
		l.buckets.RemoveOldest()
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.Len()
}
