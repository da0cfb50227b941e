// Package event carries live events (lodestone.Event) from the ingest pipeline and background jobs to
// subscribers such as the SSE stream: Broker within one process, PGBus across replicas sharing PostgreSQL.
package event

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Defaults for both buses.
const (
	DefaultRingSize = 4096 // events kept for resuming subscribers
	// A subscriber that lags behind by more than DefaultBuffer events or DefaultBufferBytes of event data is
	// dropped (its channel closes) and resumes from the ring: what one slow stream can pin stays small.
	DefaultBuffer      = 256
	DefaultBufferBytes = 1 << 20
)

var errClosed = lodestone.Errorf(lodestone.EUNAVAILABLE, "event bus is closed")

// BrokerConfig sizes a Broker.
type BrokerConfig struct {
	RingSize int // default DefaultRingSize
	Buffer   int // per-subscriber buffer in events; default DefaultBuffer
	// BufferBytes bounds the event data a subscriber may have waiting; default DefaultBufferBytes. One event is
	// always accepted into an empty buffer, whatever its size.
	BufferBytes int
	// FirstID is the id of the first event. The default, the current time in microseconds, makes ids increase
	// across restarts, so a client resuming with an id from before a restart gets everything since, not nothing.
	FirstID int64
	// Linger, when positive, makes the broker tell producers (lodestone.EventDemand) that nobody wants events once
	// no subscription has existed for that long; the ingest writer then builds none. A subscriber that reconnects
	// within Linger (an EventSource retries after a few seconds) still resumes without a gap. Zero: events are
	// always wanted, so the ring always holds the newest ones.
	Linger time.Duration
}

// Broker is the in-memory event bus of a single process. Publish never blocks, ids increase by one, and the last
// RingSize events stay available to subscribers that resume.
type Broker struct {
	h      *hub
	now    func() time.Time
	linger time.Duration
}

var (
	_ lodestone.EventBus    = (*Broker)(nil)
	_ lodestone.EventDemand = (*Broker)(nil)
)

// NewBroker returns an empty broker.
func NewBroker(cfg BrokerConfig) *Broker {
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.FirstID <= 0 {
		cfg.FirstID = time.Now().UnixMicro()
	}
	return &Broker{h: newHub(cfg.RingSize, cfg.Buffer, cfg.BufferBytes, cfg.FirstID-1), now: time.Now,
		linger: cfg.Linger}
}

// Wanted implements lodestone.EventDemand: without BrokerConfig.Linger always true, else whether a subscription
// exists or ended less than Linger ago.
func (b *Broker) Wanted(context.Context) bool {
	if b.linger <= 0 {
		return true
	}
	return b.h.subscribedWithin(b.linger, b.now())
}

// Publish assigns e the next id and hands it to every subscriber. Data must be JSON; an empty Time is set to now.
func (b *Broker) Publish(ctx context.Context, e lodestone.Event) error {
	if err := check(&e, b.now); err != nil {
		return err
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if b.h.closed {
		return errClosed
	}
	e.ID = b.h.last + 1
	b.h.deliverLocked(e)
	return nil
}

// Subscribe implements lodestone.EventBus. Events older than the ring are gone; a subscriber resuming from one of
// them gets the whole ring.
func (b *Broker) Subscribe(ctx context.Context, afterID int64) (<-chan lodestone.Event, error) {
	return b.h.subscribe(ctx, afterID, nil, nil)
}

// LastID returns the id of the newest event, or FirstID-1 before the first.
func (b *Broker) LastID() int64 { return b.h.lastID() }

// Subscribers returns how many subscriptions are live.
func (b *Broker) Subscribers() int { return b.h.subscribers() }

// Close ends every subscription; later calls to Publish and Subscribe fail.
func (b *Broker) Close() error {
	b.h.close()
	return nil
}

// check validates an event before it is published and fills in its time.
func check(e *lodestone.Event, now func() time.Time) error {
	if e.Type == "" {
		return lodestone.Errorf(lodestone.EINVALID, "event has no type")
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	} else if !json.Valid(e.Data) {
		return lodestone.Errorf(lodestone.EINVALID, "event %s: data is not JSON", e.Type)
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	return nil
}
