package event_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
)

func ev(i int) lodestone.Event {
	return lodestone.Event{Type: lodestone.EventHeartbeat, DeviceID: fmt.Sprintf("d%d", i),
		Data: json.RawMessage(fmt.Sprintf(`{"device_id":"d%d","uptime_ticks":%d}`, i, i))}
}

// recv takes n events from ch, failing the test if the channel closes or stays silent for long.
func recv(t *testing.T, ch <-chan lodestone.Event, n int) []lodestone.Event {
	t.Helper()
	var out []lodestone.Event
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(out), n)
			}
			out = append(out, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d events", len(out), n)
		}
	}
	return out
}

// inOrder checks that events carry consecutive ids from first and the data of ev(base..).
func inOrder(t *testing.T, got []lodestone.Event, base int) {
	t.Helper()
	for i, e := range got {
		if want := ev(base + i); e.DeviceID != want.DeviceID || string(e.Data) != string(want.Data) {
			t.Fatalf("event %d = %s %s, want %s", i, e.DeviceID, e.Data, want.Data)
		}
		if i > 0 && e.ID <= got[i-1].ID {
			t.Fatalf("ids not increasing: %d after %d", e.ID, got[i-1].ID)
		}
	}
}

func TestBrokerOrderAndFanOut(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{FirstID: 1})
	ctx := t.Context()
	a := subscribe(t, b, ctx, 0)
	c := subscribe(t, b, ctx, 0)
	for i := range 100 {
		if err := b.Publish(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []<-chan lodestone.Event{a, c} {
		got := recv(t, ch, 100)
		inOrder(t, got, 0)
		if got[0].ID != 1 || got[99].ID != 100 {
			t.Fatalf("ids %d..%d, want 1..100", got[0].ID, got[99].ID)
		}
		if got[0].Time.IsZero() || got[0].Type != lodestone.EventHeartbeat {
			t.Fatalf("event %+v", got[0])
		}
	}
}

func TestBrokerResume(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{RingSize: 50, FirstID: 1})
	ctx := t.Context()
	for i := range 80 {
		b.Publish(ctx, ev(i))
	}
	// Within the ring: exactly the events after the id, then live ones.
	ch := subscribe(t, b, ctx, 70)
	b.Publish(ctx, ev(80))
	got := recv(t, ch, 11)
	inOrder(t, got, 70)
	if got[0].ID != 71 {
		t.Fatalf("resumed at %d, want 71", got[0].ID)
	}
	// Older than the ring: everything the ring holds (ids 32..81).
	old := subscribe(t, b, ctx, 5)
	got = recv(t, old, 50)
	inOrder(t, got, 31)
	if got[0].ID != 32 {
		t.Fatalf("first kept id %d, want 32", got[0].ID)
	}
	// No resume point, or one at or past the newest event: live events only.
	for _, after := range []int64{0, 81, 1000} {
		live := subscribe(t, b, ctx, after)
		b.Publish(ctx, ev(200))
		if e := recv(t, live, 1)[0]; e.DeviceID != "d200" {
			t.Fatalf("after=%d: first event %s, want the live d200", after, e.DeviceID)
		}
	}
}

func TestBrokerIDsIncreaseAcrossRestarts(t *testing.T) {
	a := event.NewBroker(event.BrokerConfig{})
	a.Publish(t.Context(), ev(1))
	time.Sleep(2 * time.Microsecond)
	b := event.NewBroker(event.BrokerConfig{})
	if b.LastID() < a.LastID() {
		t.Fatalf("a restarted broker starts at %d, below the previous %d", b.LastID(), a.LastID())
	}
}

func TestBrokerSlowSubscriberIsDropped(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{Buffer: 8})
	ctx := t.Context()
	slow := subscribe(t, b, ctx, 0)
	fast := subscribe(t, b, ctx, 0)
	var got []lodestone.Event
	for i := range 1000 {
		b.Publish(ctx, ev(i)) // never blocks, although slow reads nothing
		got = append(got, recv(t, fast, 1)...)
	}
	inOrder(t, got, 0)
	n := drain(t, slow, 10*time.Second)
	if n == 0 || n >= 1000 {
		t.Fatalf("slow subscriber got %d events before its channel closed", n)
	}
	if s := b.Subscribers(); s != 1 {
		t.Fatalf("%d subscribers left, want the fast one", s)
	}
}

func TestBrokerUnsubscribeOnCancel(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	ch := subscribe(t, b, ctx, 0)
	cancel()
	drain(t, ch, 10*time.Second)
	waitFor(t, 10*time.Second, "the cancelled subscriber was not removed", func() bool { return b.Subscribers() == 0 })
	b.Close()
	if err := b.Publish(t.Context(), ev(1)); err == nil {
		t.Fatal("publish after close succeeded")
	}
	if _, err := b.Subscribe(t.Context(), 0); err == nil {
		t.Fatal("subscribe after close succeeded")
	}
}

func TestBrokerRejectsBadEvents(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{})
	for _, e := range []lodestone.Event{{Data: json.RawMessage(`{}`)}, {Type: "x", Data: json.RawMessage(`{`)}} {
		if err := b.Publish(t.Context(), e); lodestone.ErrorCode(err) != lodestone.EINVALID {
			t.Fatalf("publish %+v: %v", e, err)
		}
	}
}

// Many publishers and subscribers at once: every subscriber sees one order with no gap (run with -race).
func TestBrokerConcurrent(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{Buffer: 4096})
	ctx := t.Context()
	const pubs, per = 4, 500
	var subs []<-chan lodestone.Event
	for range 3 {
		ch := subscribe(t, b, ctx, 0)
		subs = append(subs, ch)
	}
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				b.Publish(ctx, ev(p*per+i))
			}
		}()
	}
	results := make([][]lodestone.Event, len(subs))
	errs := make([]error, len(subs))
	for i, ch := range subs {
		wg.Go(func() { results[i], errs[i] = take(ch, pubs*per, 10*time.Second) }) // not recv: no t.Fatal here
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
	}
	for i, r := range results {
		for j := 1; j < len(r); j++ {
			if r[j].ID != r[j-1].ID+1 || r[j].ID != results[0][j].ID || r[j].DeviceID != results[0][j].DeviceID {
				t.Fatalf("subscriber %d event %d: id %d %s, previous %d; subscriber 0 has %d %s", i, j, r[j].ID,
					r[j].DeviceID, r[j-1].ID, results[0][j].ID, results[0][j].DeviceID)
			}
		}
	}
}

func BenchmarkBrokerPublish(b *testing.B) {
	for _, nsub := range []int{0, 1, 8} {
		b.Run(fmt.Sprintf("subscribers=%d", nsub), func(b *testing.B) {
			br := event.NewBroker(event.BrokerConfig{Buffer: 1 << 16})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for range nsub {
				ch := subscribe(b, br, ctx, 0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range ch {
					}
				}()
			}
			e := ev(1)
			b.ReportAllocs()
			for b.Loop() {
				br.Publish(ctx, e)
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

// bigEvent is an event with about size bytes of data.
func bigEvent(i, size int) lodestone.Event {
	pad := make([]byte, size)
	for j := range pad {
		pad[j] = 'x'
	}
	return lodestone.Event{Type: lodestone.EventLogs, DeviceID: fmt.Sprintf("d%d", i),
		Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))}
}

// A subscriber that stops reading is dropped once its waiting events hold DefaultBufferBytes, not after 1,024
// events of any size: a stalled stream pins about a megabyte, however large the events are.
func TestBrokerSlowSubscriberBoundedInBytes(t *testing.T) {
	b := event.NewBroker(event.BrokerConfig{RingSize: 4})
	ctx := t.Context()
	slow, _ := b.Subscribe(ctx, 0)
	fast, _ := b.Subscribe(ctx, 0)
	const size, n = 64 << 10, 100
	for i := range n {
		b.Publish(ctx, bigEvent(i, size))
		recv(t, fast, 1)
	}
	// Publish drops a subscriber synchronously, so it is gone by now; draining its closed channel then ends.
	if s := b.Subscribers(); s != 1 {
		t.Fatalf("%d subscribers after %d KiB waited for the stalled one, want it dropped", s, n*size>>10)
	}
	got := 0
	for range slow {
		got++
	}
	// The waiting events, plus one the subscriber's goroutine holds and one in hand-over.
	if limit := event.DefaultBufferBytes/size + 2; got > limit {
		t.Fatalf("a stalled subscriber held %d events of %d KiB (%d KiB), want at most %d", got, size>>10,
			got*size>>10, limit)
	}
	if got == 0 {
		t.Fatal("the stalled subscriber got nothing before it was dropped")
	}
	// One event larger than the whole budget still reaches a subscriber that keeps up.
	live, _ := b.Subscribe(ctx, 0)
	b.Publish(ctx, bigEvent(n, 2*event.DefaultBufferBytes))
	if e := recv(t, live, 1)[0]; len(e.Data) < 2*event.DefaultBufferBytes {
		t.Fatalf("big event truncated to %d bytes", len(e.Data))
	}
}
