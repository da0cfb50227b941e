package httpapi_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// stabilityFleet writes 40 devices on A and 40 on B (B devices first report A, then B) over ten hours ending an
// hour ago, a contact every 10 minutes. Each A device faults once, each B device three times, in different hours
// and never in a device's first hour: B crashes three times as often as A.
func stabilityFleet(t *testing.T, store lodestone.Store) time.Time {
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour).Add(-11 * time.Hour)
	for step := range 60 {
		at := start.Add(time.Duration(step) * 10 * time.Minute)
		var batches []*lodestone.DeviceBatch
		for i := range 80 {
			id, v := fmt.Sprintf("a%02d", i), "A"
			faults := step == 6+i%50 // hour 1 to 9
			if i >= 40 {
				id, v = fmt.Sprintf("b%02d", i), "B"
				if step == 0 {
					v = "A"
				}
				faults = step == 6+i%6 || step == 24+i%6 || step == 48+i%6 // hours 1, 4 and 8
			}
			b := &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: at, Info: &lodestone.DeviceInfo{FirmwareVersion: v}}
			if faults {
				b.Faults = []lodestone.Fault{{}}
			}
			if step == 30 && i%10 == 0 {
				b.Reboots = []lodestone.Reboot{{Reason: 3}, {Reason: 1}}
			}
			batches = append(batches, b)
		}
		if err := store.WriteTelemetry(ctx, batches); err != nil {
			t.Fatal(err)
		}
	}
	return start
}

func TestStabilityRoute(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			e := newFerriteEnv(t, store, authOpts{users: ferriteUsers})
			start := stabilityFleet(t, store)
			a := e.do("GET", "/stability", asViewer, nil).must(t, 200)
			vs := a.body["versions"].([]any)
			if len(vs) != 2 {
				t.Fatalf("versions: %s", a.raw)
			}
			by := map[string]map[string]any{}
			for _, v := range vs {
				by[v.(map[string]any)["version"].(string)] = v.(map[string]any)
			}
			// Worked by hand: every device is observed 59 × 10 minutes; an A device faults in one of those hours
			// (six contacts, one hour observed), a B device in three.
			hours := 40 * 59 * 10 / 60.0
			want := map[string]map[string]float64{
				"A": {"devices": 40, "device_hours": hours, "faults": 40, "crash_hours": 40,
					"faults_per_1000h": 40 * 1000 / hours, "crash_free_hours_pct": 100 * (hours - 40) / hours,
					"unexpected_reboots": 4, "reboots_per_1000h": 4 * 1000 / hours},
				"B": {"devices": 40, "device_hours": hours, "faults": 120, "crash_hours": 120,
					"faults_per_1000h": 120 * 1000 / hours, "crash_free_hours_pct": 100 * (hours - 120) / hours,
					"unexpected_reboots": 4, "reboots_per_1000h": 4 * 1000 / hours},
			}
			for v, fields := range want {
				for k, w := range fields {
					if g, _ := by[v][k].(float64); math.Abs(g-w) > 1e-9 {
						t.Errorf("%s %s = %v, want %v", v, k, by[v][k], w)
					}
				}
			}
			b := by["B"]
			if b["previous"] != "A" || b["vs_previous"].(map[string]any)["faults_ratio"].(float64)-3 > 1e-9 ||
				b["reboots_by_reason"].(map[string]any)["WatchdogTimeout"] != 4.0 {
				t.Errorf("B against A: %v", b)
			}
			if !strings.HasSuffix(a.body["from"].(string), ":00:00") {
				t.Errorf("range not in whole hours: %v", a.body["from"])
			}
			// A range of the first two hours only.
			q := "from=" + url.QueryEscape(start.Format(time.RFC3339)) + "&to=" +
				url.QueryEscape(start.Add(2*time.Hour).Format(time.RFC3339)) + "&version=B"
			a = e.do("GET", "/stability?"+q, asViewer, nil).must(t, 200)
			vs = a.body["versions"].([]any)
			if len(vs) != 1 || vs[0].(map[string]any)["device_hours"].(float64) != 40*11*10/60.0 {
				t.Fatalf("two hours of B: %s", a.raw)
			}
			for _, bad := range []string{"from=yesterday", "from=2026-03-02&to=2026-03-01", "group=x&tag=y",
				"from=2020-01-01&to=2026-01-01"} {
				if a := e.do("GET", "/stability?"+bad, asViewer, nil); a.status != 400 || a.body["error"] == nil {
					t.Errorf("%s: %d %s", bad, a.status, a.raw)
				}
			}
			e.do("GET", "/stability?group=nope", asViewer, nil).must(t, 404)
			e.do("GET", "/stability", nil, nil).must(t, 401)

			// Prometheus: the last 24 hours by version.
			p := e.do("GET", "/metrics/prometheus", asViewer, nil).must(t, 200)
			for _, line := range []string{`lodestone_stability_faults_per_1000h{version="B"} ` + fmt.Sprint(120*1000/hours),
				`lodestone_stability_devices{version="A"} 40`} {
				if !strings.Contains(p.raw, line) {
					t.Errorf("prometheus lacks %q", line)
				}
			}
		})
	}
}

func TestDeviceTimelineRoute(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			e := newFerriteEnv(t, store, authOpts{users: ferriteUsers})
			stabilityFleet(t, store)
			a := e.do("GET", "/devices/b40/timeline", asViewer, nil).must(t, 200)
			kinds := map[string]int{}
			var last float64 = math.MaxFloat64
			for _, x := range a.body["entries"].([]any) {
				x := x.(map[string]any)
				kinds[x["kind"].(string)]++
				if x["at_ms"].(float64) > last {
					t.Fatalf("not newest first: %s", a.raw)
				}
				last = x["at_ms"].(float64)
			}
			if kinds["fault"] != 3 || kinds["reboot"] != 2 || kinds["firmware"] != 2 || kinds["online"] != 1 ||
				a.body["next"] != nil {
				t.Fatalf("kinds %v: %s", kinds, a.raw)
			}
			// Pages of three, followed by their next URL, hold the same entries.
			n, next := 0, "/devices/b40/timeline?limit=3"
			for next != "" {
				a := e.do("GET", next, asViewer, nil).must(t, 200)
				n += len(a.body["entries"].([]any))
				next, _ = a.body["next"].(string)
			}
			if n != 8 {
				t.Fatalf("paged %d entries, want 8", n)
			}
			for _, bad := range []string{"limit=0", "limit=501", "cursor=zzz", "log_window=1h", "log_window=x",
				"logs_per_fault=-1", "from=2026-03-02&to=2026-03-01"} {
				if a := e.do("GET", "/devices/b40/timeline?"+bad, asViewer, nil); a.status != 400 || a.body["error"] == nil {
					t.Errorf("%s: %d %s", bad, a.status, a.raw)
				}
			}
			e.do("GET", "/devices/nope/timeline", asViewer, nil).must(t, 404)
		})
	}
}
