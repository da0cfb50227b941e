package otlp

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/lodestone-fleet/lodestone"
)

// Fanout is an in-process lodestone.EventBus for log tails when the server has no shared event bus: events go to
// the subscribers of this process only, a slow subscriber is dropped rather than waited for, and there is no
// replay (afterID is ignored). A subscriber is dropped once fanoutBuffer events or fanoutBufferBytes of event
// data wait for it, so a stalled tail pins little memory however large the log batches are.
type Fanout struct {
	mu     sync.Mutex
	subs   map[*fanoutSub]struct{}
	nextID atomic.Int64
	onSub  func() error // called after a subscriber is added (the Relay starts following the bus)
}

const (
	fanoutBuffer      = 256
	fanoutBufferBytes = 1 << 20
)

type fanoutSub struct {
	in      chan lodestone.Event
	waiting atomic.Int64 // bytes of event data in in
}

func eventBytes(e lodestone.Event) int64 { return int64(len(e.Data)+len(e.Type)+len(e.DeviceID)) + 64 }

func (f *Fanout) setOnSubscribe(fn func() error) {
	f.mu.Lock()
	f.onSub = fn
	f.mu.Unlock()
}

var _ lodestone.EventBus = (*Fanout)(nil)

// NewFanout returns an empty fan-out.
func NewFanout() *Fanout { return &Fanout{subs: map[*fanoutSub]struct{}{}} }

// Publish implements lodestone.EventPublisher; it never blocks.
func (f *Fanout) Publish(_ context.Context, e lodestone.Event) error {
	e.ID = f.nextID.Add(1)
	size := eventBytes(e)
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		if w := s.waiting.Load(); w > 0 && w+size > fanoutBufferBytes {
			f.dropLocked(s)
			continue
		}
		select {
		case s.in <- e:
			s.waiting.Add(size)
		default:
			f.dropLocked(s) // fell behind: close so the client reconnects
		}
	}
	return nil
}

func (f *Fanout) dropLocked(s *fanoutSub) {
	delete(f.subs, s)
	close(s.in)
}

// Subscribe implements lodestone.EventBus.
func (f *Fanout) Subscribe(ctx context.Context, _ int64) (<-chan lodestone.Event, error) {
	s := &fanoutSub{in: make(chan lodestone.Event, fanoutBuffer)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	onSub := f.onSub
	f.mu.Unlock()
	if onSub != nil {
		if err := onSub(); err != nil {
			f.mu.Lock()
			delete(f.subs, s)
			f.mu.Unlock()
			return nil, err
		}
	}
	out := make(chan lodestone.Event)
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if _, ok := f.subs[s]; ok {
				f.dropLocked(s)
			}
		}()
		for {
			select {
			case e, ok := <-s.in:
				if !ok {
					return
				}
				s.waiting.Add(-eventBytes(e))
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Subscribers reports how many subscribers are connected.
func (f *Fanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
