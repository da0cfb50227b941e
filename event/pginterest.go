package event

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// The events table is written only while some replica wants it. A replica wants it while it has subscribers and
// for Grace after its last one left (so a client that reconnects, to any replica, can resume): it keeps a row in
// event_listeners whose until is Grace ahead of the last time it had a subscriber. Writers check that table
// before they write a batch, so a cluster that nobody watches does not write its whole ingest stream twice.
//
// No event published after Subscribe returns can be missed: Subscribe commits the row before it returns, and a
// writer checks for rows after the events of its batch were published, in a statement that sees every commit
// before it. A positive answer is cached until the newest row's until, which only ever moves forward.

// interest is a PGBus's side of event_listeners.
type interest struct {
	replica string
	grace   time.Duration
	refresh time.Duration // how often a replica with subscribers moves its until forward

	mu        sync.Mutex
	refreshed time.Time // when this replica's row was last written (local clock)

	wantedUntil atomic.Int64 // local time (unix ns) until which some row is known to be live
}

func newInterest(grace time.Duration) *interest {
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails
	return &interest{replica: hex.EncodeToString(id[:]), grace: grace, refresh: min(grace/4, 10*time.Second)}
}

// hold makes sure this replica's row is live for at least grace − refresh from now, writing it if it was last
// written more than refresh ago. Subscribe calls it before it returns; the refresher while subscribers remain.
func (b *PGBus) hold(ctx context.Context) error {
	in := b.interest
	in.mu.Lock()
	defer in.mu.Unlock()
	start := time.Now()
	if start.Sub(in.refreshed) < in.refresh {
		return nil
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO event_listeners (replica, until)
		VALUES ($1, now() + make_interval(secs => $2))
		ON CONFLICT (replica) DO UPDATE SET until = excluded.until`, in.replica, in.grace.Seconds()); err != nil {
		// The client may retry; the server's log gets the cause.
		return errors.Join(lodestone.Errorf(lodestone.EUNAVAILABLE, "live events are unavailable, retry later"),
			fmt.Errorf("event: register as a listener: %w", err))
	}
	in.refreshed = start
	return nil
}

// keepHolding refreshes this replica's row while it has subscribers, until ctx ends.
func (b *PGBus) keepHolding(ctx context.Context) {
	t := time.NewTicker(b.interest.refresh / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.h.subscribers() == 0 {
			continue
		}
		if err := b.hold(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("cannot renew this replica's interest in live events", "err", err)
		}
	}
}

// Wanted implements lodestone.EventDemand: it reports whether any replica wants events stored. It errs on the
// side of writing: when the table cannot be read, it says yes and the insert reports the failure.
func (b *PGBus) Wanted(ctx context.Context) bool {
	in := b.interest
	start := time.Now()
	if start.UnixNano() < in.wantedUntil.Load() {
		return true
	}
	var left *float64 // seconds until the newest row's until, by the database's clock
	if err := b.pool.QueryRow(ctx, `SELECT extract(epoch FROM max(until) - now())::float8 FROM event_listeners`).
		Scan(&left); err != nil {
		return true
	}
	if left == nil || *left <= 0 {
		return false
	}
	in.wantedUntil.Store(start.Add(time.Duration(*left * float64(time.Second))).UnixNano())
	return true
}

// trimListeners deletes rows that ran out long ago: every replica start leaves one.
const trimListeners = `DELETE FROM event_listeners WHERE until < now() - interval '1 hour'`
