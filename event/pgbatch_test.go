package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
)

// A row gives back each event as published: data byte for byte (whitespace inside it, HTML characters, escapes;
// not whitespace around it), odd strings, times to the nanosecond, and ids from the row id and each event's place
// in it. The first row takes the fast path, the second (escaped strings) encoding/json.
func TestBatchRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	plain := []lodestone.Event{
		{Type: "metric", DeviceID: "dev-1", Time: at, Data: json.RawMessage(`{"a": 1,  "b":"<&>\"}]"}`)},
		{Type: "heartbeat", Time: at.Add(time.Second), Data: json.RawMessage(` [1,
2, {"x":[]}] `)},
		{Type: "x", DeviceID: "ünï", Time: at, Data: json.RawMessage(`"\u00e9,}"`)},
		{Type: "x", DeviceID: "d", Time: at, Data: json.RawMessage(`-1.5e3`)},
	}
	odd := append([]lodestone.Event{{Type: `we"ird\type`, DeviceID: "line\n<x>", Time: at,
		Data: json.RawMessage(`null`)}}, plain...)
	for _, in := range [][]lodestone.Event{plain, odd} {
		data := encodeBatch(nil, in)
		if !json.Valid(data) {
			t.Fatalf("not JSON: %s", data)
		}
		if _, fast := decodeFast(data, len(in)); fast != (len(in) == len(plain)) {
			t.Fatalf("fast path %v for %s", fast, data)
		}
		got, err := decodeRow(nil, 7, len(in), data, 0, 1<<62)
		if err != nil || len(got) != len(in) {
			t.Fatalf("decoded %d events, %v", len(got), err)
		}
		for i, e := range got {
			w := in[i]
			if e.ID != 7<<12|int64(i) || e.Type != w.Type || e.DeviceID != w.DeviceID || !e.Time.Equal(w.Time) ||
				string(e.Data) != strings.TrimSpace(string(w.Data)) {
				t.Fatalf("event %d = %+v %s, want %+v %s", i, e, e.Data, w, w.Data)
			}
		}
		// Only ids in (after, upTo].
		if got, _ = decodeRow(nil, 7, len(in), data, 7<<12, 7<<12|1); len(got) != 1 || got[0].ID != 7<<12|1 {
			t.Fatalf("filtered: %+v", got)
		}
		for _, count := range []int{2, -1, 0, MaxBatch + 1} {
			if _, err := decodeRow(nil, 7, count, data, 0, 1<<62); err == nil {
				t.Fatalf("a row of %d events that says %d decoded", len(in), count)
			}
		}
	}
}

// FuzzBatch: whatever is published comes back the same from either decoder, and no row, however broken, panics.
func FuzzBatch(f *testing.F) {
	f.Add("metric", "dev-1", `{"a":[1,"]"]}`, int64(1))
	f.Add(`q"`, "ü", ` "x\"" `, int64(-5))
	f.Fuzz(func(t *testing.T, typ, device, data string, ns int64) {
		decodeRow(nil, 1, 1, []byte(data), 0, 1<<62) // must not panic
		if !json.Valid([]byte(data)) || typ == "" {
			return
		}
		in := []lodestone.Event{{Type: typ, DeviceID: device, Time: time.Unix(0, ns).UTC(),
			Data: json.RawMessage(data)}, {Type: "x", Time: time.Unix(0, 0).UTC(), Data: json.RawMessage("{}")}}
		row := encodeBatch(nil, in)
		got, err := decodeRow(nil, 1, 2, row, 0, 1<<62)
		var slow []wireEvent
		if err2 := json.Unmarshal(row, &slow); err != nil || err2 != nil || len(got) != 2 {
			t.Fatalf("%s: %v %v", row, err, err2)
		}
		e := got[0]
		if e.Type != slow[0].Type || e.DeviceID != slow[0].DeviceID || !e.Time.Equal(in[0].Time) ||
			string(e.Data) != string(slow[0].Data) || string(got[1].Data) != "{}" {
			t.Fatalf("%s: decoded %+v %s, encoding/json %+v %s", row, e, e.Data, slow[0], slow[0].Data)
		}
		if utf8.ValidString(typ) && utf8.ValidString(device) && (e.Type != typ || e.DeviceID != device) {
			t.Fatalf("%q %q came back as %q %q", typ, device, e.Type, e.DeviceID)
		}
	})
}

// BenchmarkDecodeRow measures what reading a row costs each replica's listener per event.
func BenchmarkDecodeRow(b *testing.B) {
	batch := make([]lodestone.Event, 1000)
	for i := range batch {
		batch[i] = lodestone.Event{Type: lodestone.EventMetric, DeviceID: fmt.Sprintf("device-%06d", i),
			Time: time.Now().UTC(), Data: json.RawMessage(fmt.Sprintf(
				`{"device_id":"device-%06d","key":"heap_free","value":%d,"unit":"bytes"}`, i, 1000*i))}
	}
	data := encodeBatch(nil, batch)
	b.SetBytes(int64(len(data)))
	var evs []lodestone.Event
	for b.Loop() {
		var err error
		if evs, err = decodeRow(evs[:0], 1, len(batch), data, 0, 1<<62); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
