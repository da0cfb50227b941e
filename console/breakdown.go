package console

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// breakdownTTL is how long a fleet breakdown (devices by status, firmware, tag, group) is reused. Counting reads
// a whole index, which at 100,000 devices costs tens of milliseconds; the fleet's composition moves slowly, and
// what changes by the second (devices coming online, faults) reaches the pages through the live stream.
const breakdownTTL = 10 * time.Second

type breakdownCache struct {
	mu sync.Mutex
	m  map[string]breakdownEntry
}

type breakdownEntry struct {
	at  time.Time
	val []lodestone.DeviceCount
}

// breakdown returns CountDevicesBy(by, limit), reused for breakdownTTL. Concurrent misses may each count; the
// result is the same.
func (c *Console) breakdown(ctx context.Context, by string, limit int) ([]lodestone.DeviceCount, error) {
	key := by + "/" + strconv.Itoa(limit)
	now := c.now()
	c.counts.mu.Lock()
	e, ok := c.counts.m[key]
	c.counts.mu.Unlock()
	if ok && now.Sub(e.at) >= 0 && now.Sub(e.at) < breakdownTTL {
		return e.val, nil
	}
	val, err := c.cfg.Counts.CountDevicesBy(ctx, by, limit)
	if err != nil {
		return nil, err
	}
	c.counts.mu.Lock()
	if c.counts.m == nil {
		c.counts.m = map[string]breakdownEntry{}
	}
	c.counts.m[key] = breakdownEntry{at: now, val: val}
	c.counts.mu.Unlock()
	return val, nil
}
