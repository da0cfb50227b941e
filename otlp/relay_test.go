package otlp_test

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// The relay follows the shared bus only while some tail is open: a replica nobody tails reads nothing back.
func TestRelayFollowsTheBusOnlyWhileTailed(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	bus := event.NewBroker(event.BrokerConfig{})
	defer bus.Close()
	out := otlp.NewFanout()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := otlp.NewRelay(bus, e.db, out, nil)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := bus.Subscribers(); n != 0 {
		t.Fatalf("untailed relay holds %d bus subscriptions", n)
	}
	tail, stopTail := context.WithCancel(ctx)
	if _, err := out.Subscribe(tail, 0); err != nil {
		t.Fatal(err)
	}
	// Subscribe returned: the relay follows the bus already, so nothing committed from now on is missed.
	if n := bus.Subscribers(); n != 1 {
		t.Fatalf("tailed relay holds %d bus subscriptions, want 1", n)
	}
	stopTail()
	deadline := time.Now().Add(10 * time.Second)
	for bus.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay still follows the bus after the last tail left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A new tail brings it back.
	if _, err := out.Subscribe(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n := bus.Subscribers(); n != 1 {
		t.Fatalf("relay did not follow the bus again: %d", n)
	}
	cancel()
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not stop")
	}
}
