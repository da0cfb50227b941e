package event

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// hub fans events out to local subscribers and keeps the newest ones so that a subscriber can resume. It never
// assigns ids: the Broker assigns them in memory, the PGBus takes them from the database. Ids must increase.
type hub struct {
	mu     sync.Mutex
	ring   []lodestone.Event // circular, oldest at head
	head   int
	n      int
	floor  int64 // every event with an id above floor is in the ring
	last   int64 // newest id delivered
	subs   map[*sub]struct{}
	left   time.Time // when a subscription last ended
	buf    int       // events a subscriber may have waiting
	bytes  int       // event data a subscriber may have waiting
	closed bool
}

type sub struct {
	live    chan lodestone.Event
	waiting atomic.Int64 // bytes of event data in live
}

func newHub(size, buf, bytes int, start int64) *hub {
	return &hub{ring: make([]lodestone.Event, size), floor: start, last: start, subs: map[*sub]struct{}{},
		buf: buf, bytes: bytes}
}

// eventBytes is what an event pins while it waits: its data and a fixed share for the rest.
func eventBytes(e lodestone.Event) int64 { return int64(len(e.Data)+len(e.Type)+len(e.DeviceID)) + 64 }

// deliver adds e to the ring and hands it to every subscriber without waiting: a subscriber whose buffer is full,
// in events or in bytes, has fallen too far behind and is dropped (its channel closes), so one slow reader never
// holds up the rest nor pins more than its share of memory.
// Events at or below the newest id already delivered are ignored.
func (h *hub) deliver(e lodestone.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deliverLocked(e)
}

func (h *hub) deliverLocked(e lodestone.Event) {
	if h.closed || e.ID <= h.last {
		return
	}
	if h.n == len(h.ring) {
		h.floor = h.ring[h.head].ID
		h.ring[h.head] = e
		h.head = (h.head + 1) % len(h.ring)
	} else {
		h.ring[(h.head+h.n)%len(h.ring)] = e
		h.n++
	}
	h.last = e.ID
	size := eventBytes(e)
	for s := range h.subs {
		if w := s.waiting.Load(); w > 0 && w+size > int64(h.bytes) {
			h.dropLocked(s)
			continue
		}
		select {
		case s.live <- e:
			s.waiting.Add(size)
		default:
			h.dropLocked(s)
		}
	}
}

func (h *hub) lastID() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// skipTo moves the hub past every event up to id without holding them, when nobody subscribes: there is nobody
// to hand them to, and reading them would be wasted work. The ring empties, so a subscriber that later resumes
// from an earlier id is served from replay. It reports whether it skipped (false: there are subscribers, or id is
// not ahead).
func (h *hub) skipTo(id int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) > 0 || id <= h.last {
		return false
	}
	h.head, h.n = 0, 0
	h.floor, h.last = id, id
	return true
}

// dropLocked ends a lagging subscription; its reader resumes from the ring.
func (h *hub) dropLocked(s *sub) {
	close(s.live)
	delete(h.subs, s)
	h.left = time.Now()
}

// subscribedWithin reports whether a subscription exists or one ended less than d before now.
func (h *hub) subscribedWithin(d time.Duration, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0 || (!h.left.IsZero() && now.Sub(h.left) < d)
}

// subscribers counts the live subscriptions.
func (h *hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// replayFunc sends the stored events with after < id <= upTo, in id order, through send, stopping when send
// returns false. It fills the gap between a subscriber's resume point and the oldest event the ring holds.
type replayFunc func(ctx context.Context, after, upTo int64, send func(lodestone.Event) bool) error

// subscribe registers a subscriber and returns its channel: first the events after afterID that the ring (or
// replay, for older ones) still has, then live ones, each id once and in order. The channel closes when ctx ends,
// the hub closes, or the subscriber falls too far behind; a caller can then subscribe again from the last id it
// received.
func (h *hub) subscribe(ctx context.Context, afterID int64, replay replayFunc,
	onReplayErr func(error)) (<-chan lodestone.Event, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	if afterID > h.last && replay == nil {
		afterID = 0 // an id this bus never issued: live events only
	}
	var backlog []lodestone.Event
	fromDB := false
	upTo := h.floor
	if afterID > 0 && afterID < h.last {
		fromDB = afterID < h.floor && replay != nil
		for i := range h.n {
			if e := h.ring[(h.head+i)%len(h.ring)]; e.ID > afterID {
				backlog = append(backlog, e)
			}
		}
	}
	s := &sub{live: make(chan lodestone.Event, h.buf)}
	h.subs[s] = struct{}{}
	h.mu.Unlock()

	out := make(chan lodestone.Event)
	go func() {
		defer close(out)
		defer h.unsubscribe(s)
		sent := afterID
		send := func(e lodestone.Event) bool {
			if e.ID <= sent {
				return true // already sent (replay and ring overlap, or a resume point ahead of this replica)
			}
			select {
			case out <- e:
				sent = e.ID
				return true
			case <-ctx.Done():
				return false
			}
		}
		if fromDB {
			if err := replay(ctx, afterID, upTo, send); err != nil {
				if ctx.Err() == nil && onReplayErr != nil {
					onReplayErr(err)
				}
				return
			}
		}
		for _, e := range backlog {
			if !send(e) {
				return
			}
		}
		for {
			select {
			case e, ok := <-s.live:
				if !ok {
					return
				}
				s.waiting.Add(-eventBytes(e))
				if !send(e) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.left = time.Now()
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		close(s.live)
		delete(h.subs, s)
	}
}
