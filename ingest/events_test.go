package ingest_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/ingest"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// The ferrite spec's V13 batch (DeviceInfo, RebootReason, Metrics, Heartbeat) and V7 FaultRecord.
const (
	v13 = "EC0106011A0000000B746573742D64657669636505312E302E30EFBEADDE00000000F3A2EC0105010A00020004002A000000A08601000B37EC010201440003000306636C69636B73002A00000000000000E8030000000000000474656D70010000CC4100000000D007000000000000036C6174020000C03F00000441B80B0000000000000AC4EC010101180001003930000000000000000400000500000000000000B2F100A313C3"
	v7  = "EC010301950005000001000000020000000300000004000000050000000010000800200008000000610A0000000B0000000C0000000D0000000E0000000F0000001000000011000000003F0020EFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDE0004000000000040000000000000000066BD"
)

// Event names, order and data are ferrite's (spec §2.11 and §9: "SSE events in order: reboot, metric×3,
// heartbeat"; the V7 fault's pc as "0x08002000").
func TestBatchEventsAreFerrites(t *testing.T) {
	svc := ingest.NewService(nil, ingest.Config{}, quiet)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	batches, res := svc.Parse(append(unhex(v13), unhex(v7)...), "", now)
	if len(res.Errors) != 0 || len(batches) != 1 {
		t.Fatalf("parse: %+v, %d batches", res, len(batches))
	}
	evs := ingest.BatchEvents(nil, batches[0])
	want := []struct{ typ, data string }{
		{"reboot", `{"device_id":"test-device","reason":4}`},
		{"fault", `{"device_id":"test-device","fault_type":0,"pc":"0x08002000"}`},
		{"metric", `{"device_id":"test-device","key":"clicks","value":"{\"counter\":42}"}`},
		{"metric", `{"device_id":"test-device","key":"temp","value":"{\"gauge\":25.5}"}`},
		{"metric", `{"device_id":"test-device","key":"lat","value":"{\"histogram\":{\"min\":1.5,\"max\":8.25}}"}`},
		{"heartbeat", `{"device_id":"test-device","uptime_ticks":12345}`},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, w := range want {
		e := evs[i]
		if e.Type != w.typ || string(e.Data) != w.data || e.DeviceID != "test-device" || !e.Time.Equal(now) {
			t.Fatalf("event %d = %s %s %s %v, want %s %s", i, e.Type, e.DeviceID, e.Data, e.Time, w.typ, w.data)
		}
	}
}

func TestBatchEventsEscapeStrings(t *testing.T) {
	odd := "a\"b\\c\n\x01\xffé"
	evs := ingest.BatchEvents(nil, &lodestone.DeviceBatch{DeviceID: odd,
		Metrics: []lodestone.Metric{{Key: odd, Type: lodestone.MetricCounter, Value: 1}}})
	evs = append(evs, ingest.DeviceOfflineEvent(odd))
	for _, e := range evs {
		var got struct {
			DeviceID string `json:"device_id"`
			Key      string `json:"key"`
		}
		if !json.Valid(e.Data) || json.Unmarshal(e.Data, &got) != nil {
			t.Fatalf("%s: invalid JSON %s", e.Type, e.Data)
		}
		if want := "a\"b\\c\n\x01\uFFFDé"; got.DeviceID != want || (e.Type == "metric" && got.Key != want) {
			t.Fatalf("%s: %q %q", e.Type, got.DeviceID, got.Key)
		}
	}
	if evs[1].Type != lodestone.EventDeviceOffline || evs[1].DeviceID != odd {
		t.Fatalf("offline event %s %q", evs[1].Type, evs[1].DeviceID)
	}
}

// committedCheck wraps the real store and records, after each commit but before the writer learns of it, how
// many events the broker has: events must only ever follow the commit.
type committedCheck struct {
	lodestone.TelemetryWriter
	b    *event.Broker
	mu   sync.Mutex
	seen []int64
}

func (c *committedCheck) WriteTelemetry(ctx context.Context, b []*lodestone.DeviceBatch) error {
	err := c.TelemetryWriter.WriteTelemetry(ctx, b)
	c.mu.Lock()
	c.seen = append(c.seen, c.b.LastID())
	c.mu.Unlock()
	return err
}

func TestWriterPublishesAfterCommitOnly(t *testing.T) {
	db := openDB(t)
	const first = 100
	br := event.NewBroker(event.BrokerConfig{FirstID: first})
	cc := &committedCheck{TelemetryWriter: db, b: br}
	st := &observed{TelemetryWriter: cc, hold: make(chan struct{}), fail: "poison"}
	w := startWriter(t, st, ingest.WriterConfig{Events: br})
	var wg sync.WaitGroup
	for i, dev := range []string{"a", "poison", "b"} {
		wg.Go(func() { w.Write(context.Background(), batch(dev)) })
		if i == 0 {
			held(t, w, st, 1, 0)
		}
	}
	held(t, w, st, 1, 2) // a in the store, the other two queued behind it
	st.release()
	wg.Wait()
	w.Close() // publishes everything pending
	if cc.seen[0] != first-1 {
		t.Fatalf("events existed before the first commit returned: last id %d", cc.seen[0])
	}
	// Replay the whole ring: every event published.
	n := int(br.LastID() - first + 1)
	ch, err := br.Subscribe(t.Context(), first-1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range n {
		e := recv(t, ch)
		got[e.DeviceID]++
		if e.Type != lodestone.EventMetric {
			t.Fatalf("unexpected event %s", e.Type)
		}
	}
	if got["a"] != 1 || got["b"] != 1 || got["poison"] != 0 || n != 2 {
		t.Fatalf("events per device %v; want one each for a and b, none for the uncommitted poison", got)
	}
}

// demandBroker is a broker that says whether anyone wants events, as the PostgreSQL bus does.
type demandBroker struct {
	*event.Broker
	wanted atomic.Bool
	asked  atomic.Int32
}

func (d *demandBroker) Wanted(context.Context) bool {
	d.asked.Add(1)
	return d.wanted.Load()
}

// Events of commits that nobody wants are not built or published; once somebody does, they are.
func TestWriterSkipsUnwantedEvents(t *testing.T) {
	db := openDB(t)
	const first = 100
	br := &demandBroker{Broker: event.NewBroker(event.BrokerConfig{FirstID: first})}
	w := ingest.NewWriter(db, ingest.WriterConfig{Events: br}, quiet)
	if err := w.Write(context.Background(), batch("unwanted")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the writer never asked whether events are wanted",
		func() bool { return br.asked.Load() > 0 })
	br.wanted.Store(true)
	if err := w.Write(context.Background(), batch("wanted")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n := int(br.LastID() - first + 1)
	if n != 1 {
		t.Fatalf("%d events published, want 1 (the wanted commit's metric)", n)
	}
	ch, err := br.Subscribe(t.Context(), first-1)
	if err != nil {
		t.Fatal(err)
	}
	if e := recv(t, ch); e.DeviceID != "wanted" {
		t.Fatalf("published an event of %s", e.DeviceID)
	}
}

// recv returns the next event on ch, failing the test if none comes within 10 seconds or ch is closed.
func recv(t *testing.T, ch <-chan lodestone.Event) lodestone.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}
