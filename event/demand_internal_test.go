package event

import (
	"context"
	"testing"
	"time"
)

// With Linger, a broker wants events while somebody subscribes and for Linger after the last one left, so that a
// reconnecting stream resumes without a gap; before anyone subscribed and long after, it does not.
func TestBrokerWantedFollowsSubscribers(t *testing.T) {
	now := time.Now()
	b := NewBroker(BrokerConfig{Linger: time.Minute})
	b.now = func() time.Time { return now }
	if b.Wanted(t.Context()) {
		t.Fatal("wanted before anyone subscribed")
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := b.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Wanted(t.Context()) {
		t.Fatal("not wanted with a subscriber")
	}
	cancel()
	for range ch { // closes once the subscription has ended
	}
	for b.Subscribers() > 0 {
		time.Sleep(time.Millisecond)
	}
	now = time.Now().Add(30 * time.Second)
	if !b.Wanted(t.Context()) {
		t.Fatal("not wanted 30s after the last subscriber left: a reconnecting stream would miss events")
	}
	now = time.Now().Add(2 * time.Minute)
	if b.Wanted(t.Context()) {
		t.Fatal("still wanted two minutes after the last subscriber left")
	}
	// Without Linger every event is wanted, as before.
	if !NewBroker(BrokerConfig{}).Wanted(t.Context()) {
		t.Fatal("a broker without Linger does not want events")
	}
}
