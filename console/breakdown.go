package console

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// breakdownTTL bounds how long a fleet breakdown (devices by status, firmware, tag, group) is reused. Counting
// reads a whole index, which at 100,000 devices costs tens of milliseconds, so a count is reused for
// breakdownReuse times what it cost, up to breakdownTTL: a large fleet is counted at most a few times a second
// whatever the page traffic, and a small one, cheap to count, always shows the device that just connected.
const (
	breakdownTTL   = 10 * time.Second
	breakdownReuse = 50
)

type breakdownCache struct {
	mu sync.Mutex
	m  map[string]breakdownEntry
}

type breakdownEntry struct {
	at  time.Time
	ttl time.Duration
	val []lodestone.DeviceCount
}

// breakdown returns CountDevicesBy(by, limit), reused for breakdownReuse times its cost (at most breakdownTTL). Concurrent misses may each count; the
// result is the same.
func (c *Console) breakdown(ctx context.Context, by string, limit int) ([]lodestone.DeviceCount, error) {
	key := by + "/" + strconv.Itoa(limit)
	now := time.Now() // the wall clock, not the pages' clock: this is about cost, not about what is recent
	c.counts.mu.Lock()
	e, ok := c.counts.m[key]
	c.counts.mu.Unlock()
	if ok && now.Sub(e.at) >= 0 && now.Sub(e.at) < e.ttl {
		return e.val, nil
	}
	start := time.Now()
	val, err := c.cfg.Counts.CountDevicesBy(ctx, by, limit)
	if err != nil {
		return nil, err
	}
	ttl := min(breakdownReuse*time.Since(start), breakdownTTL)
	c.counts.mu.Lock()
	if c.counts.m == nil {
		c.counts.m = map[string]breakdownEntry{}
	}
	c.counts.m[key] = breakdownEntry{at: now, ttl: ttl, val: val}
	c.counts.mu.Unlock()
	return val, nil
}
