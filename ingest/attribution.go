package ingest

import (
	"sync"
	"time"
)

// Conn remembers the device last identified on one client connection. The SDK's HTTP transport posts a session as
// one chunk per request with no X-Device-Id: only the first request carries the DeviceInfo, so later requests on the
// same connection belong to that device.
type Conn struct {
	mu     sync.Mutex
	device string
}

// NewConn returns the attribution state of a new connection.
func NewConn() *Conn { return &Conn{} }

func (c *Conn) get() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.device
}

func (c *Conn) set(device string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.device = device
	c.mu.Unlock()
}

// recentDevices remembers, per client address, the device identified last and when, for clients that open a new
// connection per request (HTTP/1.0 style). Entries expire after the window.
type recentDevices struct {
	mu      sync.Mutex
	window  time.Duration
	max     int
	entries map[string]recentEntry
	inserts int
}

type recentEntry struct {
	device string
	at     time.Time
}

func newRecentDevices(window time.Duration, max int) *recentDevices {
	return &recentDevices{window: window, max: max, entries: make(map[string]recentEntry)}
}

func (r *recentDevices) get(addr string, now time.Time) string {
	if addr == "" || r.window <= 0 {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[addr]
	if !ok || now.Sub(e.at) > r.window {
		return ""
	}
	return e.device
}

func (r *recentDevices) set(addr, device string, now time.Time) {
	if addr == "" || r.window <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inserts++
	// Sweep expired entries now and then so the map stays bounded by the clients of one window.
	if r.inserts%1024 == 0 || len(r.entries) >= r.max {
		for k, e := range r.entries {
			if now.Sub(e.at) > r.window {
				delete(r.entries, k)
			}
		}
	}
	if _, ok := r.entries[addr]; !ok && len(r.entries) >= r.max {
		return // full of live entries: such clients must send X-Device-Id or keep their connection
	}
	r.entries[addr] = recentEntry{device: device, at: now}
}
