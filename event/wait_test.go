package event_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// subscriber is a Broker or a PGBus.
type subscriber interface {
	Subscribe(ctx context.Context, afterID int64) (<-chan lodestone.Event, error)
}

// subscribe subscribes to s, failing the test if it cannot: the assertions that follow read the channel.
func subscribe(tb testing.TB, s subscriber, ctx context.Context, afterID int64) <-chan lodestone.Event {
	tb.Helper()
	ch, err := s.Subscribe(ctx, afterID)
	if err != nil {
		tb.Fatalf("subscribe after %d: %v", afterID, err)
	}
	return ch
}

// waitFor fails the test unless cond holds within timeout; what says what did not happen.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drain reads ch until it is closed and returns how many events it held, failing the test if it is still open
// after timeout.
func drain(t *testing.T, ch <-chan lodestone.Event, timeout time.Duration) int {
	t.Helper()
	deadline := time.After(timeout)
	for n := 0; ; n++ {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
		case <-deadline:
			t.Fatalf("subscription still open after %v (%d events read)", timeout, n)
		}
	}
}

// take reads n events from ch, for goroutines that must not fail the test themselves: it returns an error if ch
// closes or stays silent for timeout.
func take(ch <-chan lodestone.Event, n int, timeout time.Duration) ([]lodestone.Event, error) {
	var out []lodestone.Event
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				return out, fmt.Errorf("channel closed after %d of %d events", len(out), n)
			}
			out = append(out, e)
		case <-time.After(timeout):
			return out, fmt.Errorf("got %d of %d events", len(out), n)
		}
	}
	return out, nil
}
