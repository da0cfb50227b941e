package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// seriesBase is a whole hour, so minute buckets start at whole minutes.
var seriesBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func seriesAt(sec int) time.Time { return seriesBase.Add(time.Duration(sec) * time.Second) }

// seriesEnv holds devices a (temp 10 and 20 in the first minute, 5 in the second, a NaN in the third), b (temp 100
// at 30 s, group g) and c (temp 50 at 40 s, group g, tag roof), registered c with key 0x00C0FFEE.
func seriesEnv(t *testing.T, store lodestone.Store) (*authEnv, string) {
	e := newFerriteEnv(t, store, authOpts{users: ferriteUsers})
	ctx := context.Background()
	gauge := func(v float64) []lodestone.Metric {
		return []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: v}}
	}
	for _, b := range []*lodestone.DeviceBatch{
		{DeviceID: "a", ReceivedAt: seriesAt(0), Metrics: gauge(10)},
		{DeviceID: "a", ReceivedAt: seriesAt(10), Metrics: gauge(20)},
		{DeviceID: "a", ReceivedAt: seriesAt(70), Metrics: gauge(5)},
		{DeviceID: "a", ReceivedAt: seriesAt(130), Metrics: gauge(nan())},
		{DeviceID: "b", ReceivedAt: seriesAt(30), Metrics: gauge(100)},
		{DeviceID: "c", ReceivedAt: seriesAt(40), Metrics: gauge(50)},
	} {
		if err := store.WriteTelemetry(ctx, []*lodestone.DeviceBatch{b}); err != nil {
			t.Fatal(err)
		}
	}
	e.do("POST", "/devices/register", asAdmin, map[string]any{"device_key": "0x00C0FFEE", "device_id": "c",
		"tags": "roof"}).must(t, 200)
	g := e.do("POST", "/groups", asAdmin, map[string]any{"name": "g"})
	gid := fmt.Sprint(g.body["group"].(map[string]any)["id"])
	for _, d := range []string{"b", "c"} {
		e.do("POST", "/groups/"+gid+"/devices/"+d, asAdmin, nil).must(t, 200)
	}
	return e, gid
}

func nan() float64 { var z float64; return z / z }

// seriesRange is the query string of the first five minutes.
func seriesRange(extra string) string {
	return "from=" + url.QueryEscape(seriesAt(0).Format(time.RFC3339)) + "&to=" +
		url.QueryEscape(seriesAt(300).Format(time.RFC3339)) + "&step=1m" + extra
}

func TestSeriesRoutes(t *testing.T) {
	ms := func(sec int) float64 { return float64(seriesAt(sec).UnixMilli()) }
	// Both backends give the same answers, byte for byte, to good and bad requests alike.
	answers := map[string][]string{}
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, gid := seriesEnv(t, tc.open(t))
			for _, c := range []struct {
				path    string
				buckets map[string][][6]any // device_id ("" for the fleet) → start_ms, count, min, max, avg, last
			}{
				{"/devices/a/series?key=temp&" + seriesRange(""), map[string][][6]any{"a": {
					{ms(0), 2.0, 10.0, 20.0, 15.0, 20.0}, {ms(60), 1.0, 5.0, 5.0, 5.0, 5.0},
					{ms(120), 1.0, nil, nil, nil, nil}}}},
				// By hex device key, as GET /devices/{id} accepts.
				{"/devices/00C0FFEE/series?key=temp&" + seriesRange(""), map[string][][6]any{"c": {
					{ms(0), 1.0, 50.0, 50.0, 50.0, 50.0}}}},
				{"/series?key=temp&device_id=b&device_id=a&" + seriesRange(""), map[string][][6]any{
					"b": {{ms(0), 1.0, 100.0, 100.0, 100.0, 100.0}},
					"a": {{ms(0), 2.0, 10.0, 20.0, 15.0, 20.0}, {ms(60), 1.0, 5.0, 5.0, 5.0, 5.0},
						{ms(120), 1.0, nil, nil, nil, nil}}}},
				{"/series?key=temp&" + seriesRange(""), map[string][][6]any{"": {
					{ms(0), 4.0, 10.0, 100.0, 45.0, 50.0}, {ms(60), 1.0, 5.0, 5.0, 5.0, 5.0},
					{ms(120), 1.0, nil, nil, nil, nil}}}},
				{"/series?key=temp&group_id=" + gid + "&" + seriesRange(""), map[string][][6]any{"": {
					{ms(0), 2.0, 50.0, 100.0, 75.0, 50.0}}}},
				{"/series?key=temp&tag=roof&group_id=" + gid + "&" + seriesRange(""), map[string][][6]any{"": {
					{ms(0), 1.0, 50.0, 50.0, 50.0, 50.0}}}},
				{"/series?key=nothing&" + seriesRange(""), map[string][][6]any{"": {}}},
			} {
				a := e.do("GET", c.path, asViewer, nil).must(t, 200)
				answers[c.path] = append(answers[c.path], a.raw)
				if a.body["key"] == "" || a.body["step_ms"] != 60000.0 || a.body["from_ms"] != ms(0) {
					t.Errorf("%s: header fields %v", c.path, a.raw)
				}
				series := a.body["series"].([]any)
				if len(series) != len(c.buckets) {
					t.Fatalf("%s: %d series: %s", c.path, len(series), a.raw)
				}
				for _, s := range series {
					s := s.(map[string]any)
					id, _ := s["device_id"].(string)
					want, ok := c.buckets[id]
					if !ok {
						t.Fatalf("%s: unexpected series %q", c.path, id)
					}
					got := s["buckets"].([]any)
					if len(got) != len(want) {
						t.Fatalf("%s: series %q has %d buckets: %s", c.path, id, len(got), a.raw)
					}
					for i, w := range want {
						b := got[i].(map[string]any)
						g := [6]any{b["start_ms"], b["count"], b["min"], b["max"], b["avg"], b["last"]}
						if g != w {
							t.Errorf("%s: series %q bucket %d = %v, want %v", c.path, id, i, g, w)
						}
					}
				}
			}
			// The step widens so that a long range stays within 1,000 buckets.
			a := e.do("GET", "/series?key=temp&from=2026-01-01&to=2026-03-02&step=1s", asViewer, nil).must(t, 200)
			answers["widened"] = append(answers["widened"], a.raw)
			if a.body["step_ms"] != float64(2*time.Hour/time.Millisecond) {
				t.Errorf("60 days at 1s: step %v, want 2h", a.body["step_ms"])
			}
			// Without from and to, the last day.
			a = e.do("GET", "/devices/a/series?key=temp", asViewer, nil).must(t, 200)
			if to, from := a.body["to_ms"].(float64), a.body["from_ms"].(float64); to-from != 86400000 ||
				time.Since(time.UnixMilli(int64(to))) > time.Minute {
				t.Errorf("default range %v..%v", from, to)
			}

			many := strings.Repeat("&device_id=a", lodestone.MaxSeriesDevices+1)
			for _, c := range []struct {
				path   string
				status int
				says   string
			}{
				{"/series?" + seriesRange(""), 400, "key is required"},
				{"/devices/a/series?" + seriesRange(""), 400, "key is required"},
				{"/series?key=temp&from=yesterday", 400, "from must be a time"},
				{"/series?key=temp&to=2026-13-01", 400, "to must be a time"},
				{"/series?key=temp&from=2026-03-02&to=2026-03-01", 400, "must be after from"},
				{"/series?key=temp&step=-5m", 400, "step must be a duration"},
				{"/series?key=temp&step=fortnight", 400, "step must be a duration"},
				{"/series?key=temp&group_id=0", 400, "group_id must be a positive integer"},
				{"/series?key=temp&group_id=x", 400, "group_id must be a positive integer"},
				{"/series?key=temp&device_id=a&tag=roof", 400, "leave them out when naming devices"},
				{"/series?key=temp&device_id=", 400, "empty device id"},
				{"/series?key=temp" + many, 400, "at most 20 device_id values"},
				{"/devices/a/series?key=temp&device_id=b", 400, "belong to GET /series"},
				{"/devices/a/series?key=temp&tag=roof", 400, "belong to GET /series"},
				{"/devices/ghost/series?key=temp", 404, "not found"},
				{"/series?key=temp&device_id=a&device_id=ghost", 404, `device \"ghost\" not found`},
			} {
				a := e.do("GET", c.path, asViewer, nil)
				if a.status != c.status || !strings.Contains(a.raw, c.says) || a.body["code"] == nil {
					t.Errorf("%s: %d %s, want %d saying %q", c.path, a.status, a.raw, c.status, c.says)
				}
				answers[c.path] = append(answers[c.path], fmt.Sprint(a.status, " ", a.raw))
			}
		})
	}
	for path, got := range answers {
		if len(got) == 2 && got[0] != got[1] {
			t.Errorf("%s: the backends answer differently:\n sqlite   %s\n postgres %s", path, got[0], got[1])
		}
	}
}

// TestDeviceListSearch: ?search= matches a substring of the device_id or the name, ASCII case ignored, and
// combines with the other filters.
func TestDeviceListSearch(t *testing.T) {
	e, gid := seriesEnv(t, openSQLite(t))
	ids := func(path string) []string {
		a := e.do("GET", path, asViewer, nil).must(t, 200)
		var out []string
		for _, d := range a.body["devices"].([]any) {
			out = append(out, d.(map[string]any)["device_id"].(string))
		}
		return out
	}
	e.do("PUT", "/devices/b", asAdmin, map[string]any{"name": "Boiler ROOM"}).must(t, 200)
	for path, want := range map[string]string{
		"/devices?search=room":                            "b",
		"/devices?search=C":                               "c",
		"/devices?search=o&sort=device_id":                "b",
		"/devices?search=&sort=device_id":                 "a b c",
		"/devices?search=c&group_id=" + gid:               "c",
		"/devices?search=b&group_id=" + gid + "&tag=roof": "",
	} {
		if got := strings.Join(ids(path), " "); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
