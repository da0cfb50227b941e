package otlp

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/lodestone-fleet/lodestone"
)

// Fanout is an in-process lodestone.EventBus for log tails when the server has no shared event bus: events go to
// the subscribers of this process only, a slow subscriber is dropped rather than waited for, and there is no
// replay (afterID is ignored).
type Fanout struct {
	mu     sync.Mutex
	subs   map[chan lodestone.Event]struct{}
	nextID atomic.Int64
	onSub  func() error // called after a subscriber is added (the Relay starts following the bus)
}

func (f *Fanout) setOnSubscribe(fn func() error) {
	f.mu.Lock()
	f.onSub = fn
	f.mu.Unlock()
}

var _ lodestone.EventBus = (*Fanout)(nil)

// NewFanout returns an empty fan-out.
func NewFanout() *Fanout { return &Fanout{subs: map[chan lodestone.Event]struct{}{}} }

// Publish implements lodestone.EventPublisher; it never blocks.
func (f *Fanout) Publish(_ context.Context, e lodestone.Event) error {
	e.ID = f.nextID.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- e:
		default:
			delete(f.subs, ch) // fell behind: close so the client reconnects
			close(ch)
		}
	}
	return nil
}

// Subscribe implements lodestone.EventBus.
func (f *Fanout) Subscribe(ctx context.Context, _ int64) (<-chan lodestone.Event, error) {
	ch := make(chan lodestone.Event, 256)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	onSub := f.onSub
	f.mu.Unlock()
	if onSub != nil {
		if err := onSub(); err != nil {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
			return nil, err
		}
	}
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}()
	return ch, nil
}

// Subscribers reports how many subscribers are connected.
func (f *Fanout) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
