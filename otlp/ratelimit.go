package otlp

import (
	"sync"
	"time"
)

// limiter is detritus' token bucket (§5.1), keyed by endpoint, token id and source, with one addition: a bucket
// that has been idle long enough to be full again is indistinguishable from a new one, so it is evicted.
type limiter struct {
	perMinute, burst float64
	now              func() time.Time

	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	lastSweep time.Time
}

type bucketKey struct{ token, source string }

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute, burst float64, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{perMinute: perMinute, burst: burst, now: now, buckets: map[bucketKey]*bucket{}, lastSweep: now()}
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
	b, ok := l.buckets[k]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[k] = b
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
		return 0 // never refills: keep buckets, or an evicted one would come back full
	}
	return time.Duration(l.burst / l.perMinute * float64(time.Minute))
}

func (l *limiter) sweep(now time.Time) {
	idle := l.refillTime()
	if idle == 0 || now.Sub(l.lastSweep) < max(idle, time.Second) {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= idle {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
