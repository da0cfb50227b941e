package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// stabilityFleet is a generated fleet and, beside it, the figures the stability definition gives for it, worked
// out here by hand (in Go) from the same events the store is sent.
type stabilityFleet struct {
	// by hour start (ms), device, version: observed ms, faults, unexpected reboots by reason
	buckets map[stabilityKey]*stabilityBucket
	devices []string
	group   map[string]bool // devices in group "half"
	updates map[string]int  // version updates seen (from→to)
}

type stabilityKey struct {
	hour    int64
	device  string
	version string
}

type stabilityBucket struct {
	observed int64
	faults   int
	reboots  map[uint8]int
}

// genStabilityFleet writes 24 devices over 6 hours: half on "A" until they update to "B" part way, some staying
// on "A"; devices report every 5 to 90 minutes (gaps over an hour count one hour); faults on "B" are three times
// as likely per contact-minute as on "A"; some reboots, expected and not.
func genStabilityFleet(t *testing.T, s lodestone.Store) *stabilityFleet {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(17, 4))
	f := &stabilityFleet{buckets: map[stabilityKey]*stabilityBucket{}, group: map[string]bool{},
		updates: map[string]int{}}
	g := &lodestone.Group{Name: "half", CreatedAt: at(0)}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	end := int64(6 * 3600_000)
	for i := range 24 {
		id := fmt.Sprintf("s%02d", i)
		f.devices = append(f.devices, id)
		version := "A"
		updateAt := int64(math.MaxInt64)
		if i%3 != 0 {
			updateAt = rng.Int64N(end)
		}
		var prev int64 = -1
		for t0 := rng.Int64N(600_000); t0 < end; t0 += 300_000 + rng.Int64N(85*60_000) {
			if t0 >= updateAt && version == "A" {
				version = "B"
				f.updates["A→B"]++
			}
			b := &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: base.Add(time.Duration(t0) * time.Millisecond),
				Info: info(version, 1)}
			hour := ms(base) + t0 - t0%3600_000
			k := stabilityKey{hour, id, version}
			bk := f.buckets[k]
			if bk == nil {
				bk = &stabilityBucket{reboots: map[uint8]int{}}
			}
			if prev >= 0 {
				bk.observed += min(t0-prev, 3600_000)
			}
			gap := float64(min(t0-max(prev, 0), 3600_000)) / 60_000
			rate := 0.004
			if version == "B" {
				rate = 0.012
			}
			if prev >= 0 && rng.Float64() < rate*gap {
				b.Faults = []lodestone.Fault{crashFault(0x08000200 + uint32(i%2)*0x100)}
				bk.faults++
			}
			if rng.IntN(6) == 0 {
				reason := []uint8{1, 3, 4, 9, 10}[rng.IntN(5)]
				b.Reboots = []lodestone.Reboot{{Reason: reason}}
				if slices.Contains(lodestone.UnexpectedRebootReasons, reason) {
					bk.reboots[reason]++
				}
			}
			if prev >= 0 || bk.faults > 0 || len(bk.reboots) > 0 {
				f.buckets[k] = bk
			}
			write(t, s, b)
			prev = t0
		}
		if i%2 == 0 {
			if err := s.AddGroupDevice(ctx, g.ID, id, at(0)); err != nil {
				t.Fatal(err)
			}
			f.group[id] = true
		}
	}
	// Give every fault its crash issue, as symbolication would.
	var rs []lodestone.Symbolication
	for _, p := range pending(t, s) {
		sig := "sig-low"
		if p.Registers.PC != 0x08000200 {
			sig = "sig-high"
		}
		rs = append(rs, lodestone.Symbolication{FaultID: p.ID, ELFID: 1, Signature: sig, Title: str("title " + sig)})
	}
	save(t, s, rs...)
	return f
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// want works out the report for [from, to) (whole hours) and the devices keep selects.
func (f *stabilityFleet) want(from, to time.Time, keep func(string) bool) map[string]*lodestone.VersionStability {
	out := map[string]*lodestone.VersionStability{}
	devices := map[string]map[string]bool{}
	for k, b := range f.buckets {
		if k.hour < ms(from) || k.hour >= ms(to) || !keep(k.device) {
			continue
		}
		v := out[k.version]
		if v == nil {
			v = &lodestone.VersionStability{Version: k.version, RebootsByReason: map[string]int{}}
			out[k.version] = v
			devices[k.version] = map[string]bool{}
		}
		devices[k.version][k.device] = true
		v.DeviceHours += float64(b.observed) / 3.6e6
		if b.faults > 0 {
			v.CrashHours += float64(b.observed) / 3.6e6
		}
		v.Faults += b.faults
		for r, n := range b.reboots {
			v.UnexpectedReboots += n
			v.RebootsByReason[[]string{3: "WatchdogTimeout", 4: "HardFault", 10: "BrownoutReset"}[r]] += n
		}
	}
	for name, v := range out {
		v.Devices = len(devices[name])
		if v.DeviceHours > 0 {
			v.CrashFreeHoursPct = 100 * (v.DeviceHours - v.CrashHours) / v.DeviceHours
			v.FaultsPer1000h = float64(v.Faults) * 1000 / v.DeviceHours
			v.RebootsPer1000h = float64(v.UnexpectedReboots) * 1000 / v.DeviceHours
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) }

func checkStability(t *testing.T, what string, got lodestone.StabilityReport, want map[string]*lodestone.VersionStability) {
	t.Helper()
	if len(got.Versions) != len(want) {
		t.Fatalf("%s: %d versions, want %d: %+v", what, len(got.Versions), len(want), got.Versions)
	}
	for i, g := range got.Versions {
		w := want[g.Version]
		if w == nil {
			t.Fatalf("%s: unexpected version %q", what, g.Version)
		}
		if i > 0 && got.Versions[i-1].DeviceHours < g.DeviceHours {
			t.Errorf("%s: versions not ordered by device-hours", what)
		}
		if g.Devices != w.Devices || !near(g.DeviceHours, w.DeviceHours) || !near(g.CrashHours, w.CrashHours) ||
			g.Faults != w.Faults || g.UnexpectedReboots != w.UnexpectedReboots ||
			!near(g.CrashFreeHoursPct, w.CrashFreeHoursPct) || !near(g.FaultsPer1000h, w.FaultsPer1000h) ||
			!near(g.RebootsPer1000h, w.RebootsPer1000h) || fmt.Sprint(g.RebootsByReason) != fmt.Sprint(w.RebootsByReason) {
			t.Errorf("%s: version %s:\n got %+v\nwant %+v", what, g.Version, g, *w)
		}
	}
}

func testStability(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	f := genStabilityFleet(t, s)
	all := func(string) bool { return true }
	rep, err := s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(6 * 3600)})
	if err != nil {
		t.Fatal(err)
	}
	checkStability(t, "fleet", rep, f.want(at(0), at(6*3600), all))
	if !rep.From.Equal(at(0)) || !rep.To.Equal(at(6*3600)) {
		t.Fatalf("range %v..%v", rep.From, rep.To)
	}
	byV := map[string]lodestone.VersionStability{}
	for _, v := range rep.Versions {
		byV[v.Version] = v
	}
	a, b := byV["A"], byV["B"]
	// B crashes about three times as often as A, and the report says so.
	if ratio := b.FaultsPer1000h / a.FaultsPer1000h; ratio < 2 || ratio > 4.5 {
		t.Errorf("B/A fault rate %.2f (A %.1f, B %.1f per 1000 h)", ratio, a.FaultsPer1000h, b.FaultsPer1000h)
	}
	if b.CrashFreeHoursPct >= a.CrashFreeHoursPct {
		t.Errorf("crash-free hours: A %.1f%%, B %.1f%%", a.CrashFreeHoursPct, b.CrashFreeHoursPct)
	}
	if b.Previous != "A" || b.VsPrevious == nil || b.VsPrevious.Version != "A" ||
		!near(b.VsPrevious.FaultsRatio, b.FaultsPer1000h/a.FaultsPer1000h) ||
		!near(b.VsPrevious.CrashFreeHoursPctDelta, b.CrashFreeHoursPct-a.CrashFreeHoursPct) || a.VsPrevious != nil {
		t.Errorf("comparison: B %+v (previous %q), A %+v", b.VsPrevious, b.Previous, a.VsPrevious)
	}
	// Top issues: devices and occurrences per version, from the faults themselves.
	for _, v := range rep.Versions {
		total := 0
		for _, is := range v.TopIssues {
			total += is.Occurrences
			if is.Devices < 1 || is.Devices > is.Occurrences || is.Title == "" {
				t.Errorf("%s issue %+v", v.Version, is)
			}
		}
		if total != v.Faults {
			t.Errorf("%s: issues hold %d occurrences, faults %d", v.Version, total, v.Faults)
		}
	}
	// A range inside, not on hour boundaries: read as the whole hours around it.
	rep, err = s.Stability(ctx, lodestone.StabilityQuery{From: at(2*3600 + 60), To: at(4*3600 - 60)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.From.Equal(at(2*3600)) || !rep.To.Equal(at(4*3600)) {
		t.Fatalf("inner range %v..%v", rep.From, rep.To)
	}
	checkStability(t, "hours 2-4", rep, f.want(at(2*3600), at(4*3600), all))
	// A group, a tag, one version.
	rep, err = s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(6 * 3600), Group: "half"})
	if err != nil {
		t.Fatal(err)
	}
	checkStability(t, "group", rep, f.want(at(0), at(6*3600), func(d string) bool { return f.group[d] }))
	rep, err = s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(6 * 3600), Versions: []string{"B"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Versions) != 1 || rep.Versions[0].Version != "B" {
		t.Fatalf("versions filter: %+v", rep.Versions)
	}
	if _, err := s.UpdateDevice(ctx, "s03", lodestone.DeviceUpdate{Tags: str("pilot")}); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(6 * 3600), Tag: "pilot"})
	if err != nil {
		t.Fatal(err)
	}
	checkStability(t, "tag", rep, f.want(at(0), at(6*3600), func(d string) bool { return d == "s03" }))
	// Bad queries.
	for _, q := range []lodestone.StabilityQuery{{}, {From: at(10), To: at(0)}, {From: at(0), To: at(10), Group: "x", Tag: "y"},
		{From: at(0), To: at(0).Add(lodestone.MaxStabilityRange + time.Hour)}} {
		if _, err := s.Stability(ctx, q); code(err) != lodestone.EINVALID {
			t.Errorf("query %+v: %v", q, err)
		}
	}
	if _, err := s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(10), Group: "nope"}); code(err) != lodestone.ENOTFOUND {
		t.Errorf("unknown group: %v", err)
	}
	// An empty range is an empty report, not an error.
	rep, err = s.Stability(ctx, lodestone.StabilityQuery{From: at(-7200), To: at(-3600)})
	if err != nil || len(rep.Versions) != 0 {
		t.Fatalf("empty range: %+v %v", rep, err)
	}
}

// testStabilityMatchesCampaignHealth: the campaign health gate reads the same figures as the report for the
// campaign's devices.
func testStabilityMatchesCampaignHealth(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	f := genStabilityFleet(t, s)
	fw := firmware(t, s, "b.bin", "B", 0)
	var members []string
	for _, d := range f.devices {
		if f.group[d] {
			members = append(members, d)
		}
	}
	c := newCampaign(t, s, fw, members...)
	h, err := s.CampaignHealth(ctx, c.ID, at(0), at(6*3600))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(6 * 3600), Group: "half"})
	if err != nil {
		t.Fatal(err)
	}
	var want lodestone.CampaignHealth
	for _, v := range rep.Versions {
		if v.Version == "B" {
			want.NewDevices, want.NewHours, want.NewFaults, want.NewReboots = v.Devices, v.DeviceHours, v.Faults, v.UnexpectedReboots
		} else {
			want.OldDevices, want.OldHours, want.OldFaults, want.OldReboots = v.Devices, v.DeviceHours, v.Faults, v.UnexpectedReboots
		}
	}
	if h.NewDevices != want.NewDevices || h.OldDevices != want.OldDevices || !near(h.NewHours, want.NewHours) ||
		!near(h.OldHours, want.OldHours) || h.NewFaults != want.NewFaults || h.OldFaults != want.OldFaults ||
		h.NewReboots != want.NewReboots || h.OldReboots != want.OldReboots || h.NewHours == 0 || h.OldHours == 0 {
		t.Fatalf("gate %+v, report %+v", h, want)
	}
	if _, err := s.CampaignHealth(ctx, 9999, at(0), at(10)); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown campaign: %v", err)
	}
}
