package ota_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// fleet is a simulated fleet on a simulated clock: devices poll for updates, install what they are offered, and
// crash at a rate that depends on the firmware they run.
type fleet struct {
	t       *testing.T
	db      lodestone.Store
	reopen  func() lodestone.Store
	now     time.Time
	svc     *ota.Service
	camps   *ota.Campaigns
	version map[string]string
	rng     *rand.Rand
	crashes map[string]float64 // faults per device-hour by version
}

// backends opens the same store again after a "restart", once per storage backend.
var backends = map[string]func(t *testing.T) func() lodestone.Store{
	"sqlite": func(t *testing.T) func() lodestone.Store {
		path := filepath.Join(t.TempDir(), "fleet.db")
		return func() lodestone.Store {
			db, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "NORMAL"})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}
	},
	"postgres": func(t *testing.T) func() lodestone.Store {
		url := pgtest.URL(t)
		return func() lodestone.Store {
			db, err := postgres.Open(context.Background(), url, postgres.Options{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}
	},
}

// eachBackend runs fn against both storage backends.
func eachBackend(t *testing.T, fn func(t *testing.T, open func() lodestone.Store)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { fn(t, backends[name](t)) })
	}
}

func newFleet(t *testing.T, open func() lodestone.Store, n int, crashes map[string]float64) *fleet {
	f := &fleet{t: t, reopen: open, now: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		version: map[string]string{}, rng: rand.New(rand.NewPCG(1, 2)), crashes: crashes}
	f.open()
	var batches []*lodestone.DeviceBatch
	for i := range n {
		id := fmt.Sprintf("dev-%03d", i)
		f.version[id] = "1.0"
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: f.now,
			Info: &lodestone.DeviceInfo{FirmwareVersion: "1.0", BuildID: 10}})
	}
	if err := f.db.WriteTelemetry(context.Background(), batches); err != nil {
		t.Fatal(err)
	}
	return f
}

// open (re)opens the database and builds fresh services over it, as a restarted server would.
func (f *fleet) open() {
	db := f.reopen()
	f.t.Cleanup(func() { db.Close() })
	f.db = db
	f.svc = ota.NewService(db, db, ota.Config{Now: func() time.Time { return f.now }})
	f.camps = ota.NewCampaigns(f.svc)
}

// step advances the clock by d: every device checks in once (installing an offer in the same check-in, as a
// device that downloads and reboots between sessions would be seen), crashes as its firmware does, and the
// campaigns tick.
func (f *fleet) step(d time.Duration) {
	ctx := context.Background()
	f.now = f.now.Add(d)
	var batches []*lodestone.DeviceBatch
	for _, id := range f.ids() {
		v := f.version[id]
		b := &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: f.now,
			Info: &lodestone.DeviceInfo{FirmwareVersion: v, BuildID: build(v)}}
		if f.rng.Float64() < f.crashes[v]*d.Hours() {
			b.Faults = []lodestone.Fault{{FaultType: 0}}
		}
		batches = append(batches, b)
	}
	if err := f.db.WriteTelemetry(ctx, batches); err != nil {
		f.t.Fatal(err)
	}
	for _, id := range f.ids() {
		v := f.version[id]
		o, ok, err := f.svc.Observe(ctx, id, &lodestone.DeviceInfo{FirmwareVersion: v, BuildID: build(v)})
		if err != nil {
			f.t.Fatal(err)
		}
		if ok {
			if _, err := f.svc.Report(ctx, lodestone.OTAReport{DeviceID: id, Status: lodestone.OTADownloading}); err != nil {
				f.t.Fatal(err)
			}
			f.version[id] = o.Version // installed; the next session's DeviceInfo confirms it
		}
	}
	if err := f.camps.Tick(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// ids lists the devices in a fixed order, so a run draws the same random numbers every time.
func (f *fleet) ids() []string {
	return slices.Sorted(maps.Keys(f.version))
}

func build(v string) uint64 {
	if v == "2.0" {
		return 20
	}
	return 10
}

func (f *fleet) on(v string) int {
	n := 0
	for _, x := range f.version {
		if x == v {
			n++
		}
	}
	return n
}

func (f *fleet) campaign(waves []int) *lodestone.Campaign {
	ctx := context.Background()
	fw := &lodestone.Firmware{Version: "2.0", BuildID: 20, SHA256: strings.Repeat("a", 64), Size: 1, Filename: "2.0.bin",
		CreatedAt: f.now}
	if err := f.db.CreateFirmware(ctx, fw); err != nil {
		f.t.Fatal(err)
	}
	ratio := 2.0
	c, n, err := f.camps.Create(ctx, ota.CampaignSpec{Name: "to 2.0", FirmwareID: fw.ID, Strategy: "canary",
		FromVersion: "1.0", Waves: waves, SoakTime: 6 * time.Hour, HealthRatio: &ratio, MinDeviceHours: 20,
		InstallTimeout: 2 * time.Hour, OfferTimeout: 2 * time.Hour})
	if err != nil || n != len(f.version) {
		f.t.Fatalf("create: %v %d", err, n)
	}
	if _, err := f.camps.Activate(ctx, c.ID); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fleet) status(id int64) *lodestone.Campaign {
	c, err := f.db.FindCampaign(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func TestCampaignRollsOutWaveByWave(t *testing.T) { eachBackend(t, testRollsOutWaveByWave) }

func testRollsOutWaveByWave(t *testing.T, open func() lodestone.Store) {
	f := newFleet(t, open, 200, map[string]float64{"1.0": 0.02, "2.0": 0.02})
	c := f.campaign([]int{5, 25, 100})
	var seen []int
	for range 200 {
		f.step(30 * time.Minute)
		if n := f.on("2.0"); len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		if f.now.Sub(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) == 8*time.Hour {
			f.open() // a restart mid-campaign: the state is in the database
		}
		if f.status(c.ID).Status != lodestone.CampaignActive {
			break
		}
	}
	if got := f.status(c.ID); got.Status != lodestone.CampaignCompleted {
		t.Fatalf("status %s (%s), devices on 2.0 over time %v", got.Status, got.HaltReason, seen)
	}
	if want := []int{10, 50, 200}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("devices on 2.0 by wave: %v, want %v", seen, want)
	}
	counts, _ := f.db.CountCampaignDevices(context.Background(), c.ID)
	if counts.Installed != 200 {
		t.Fatalf("counts %+v", counts)
	}
}

func TestCampaignHaltsWhenNewFirmwareCrashesMore(t *testing.T) {
	eachBackend(t, testHaltsWhenCrashesMore)
}

func testHaltsWhenCrashesMore(t *testing.T, open func() lodestone.Store) {
	f := newFleet(t, open, 200, map[string]float64{"1.0": 0.02, "2.0": 0.5})
	c := f.campaign([]int{5, 25, 100})
	for range 100 {
		f.step(30 * time.Minute)
		if f.status(c.ID).Status != lodestone.CampaignActive {
			break
		}
	}
	got := f.status(c.ID)
	if got.Status != lodestone.CampaignHalted || !strings.Contains(got.HaltReason, "crash rate") {
		t.Fatalf("status %s (%q)", got.Status, got.HaltReason)
	}
	if n := f.on("2.0"); n != 10 {
		t.Fatalf("%d devices got the bad firmware; only the 10 canaries should have", n)
	}
	// More ticks change nothing while it is halted.
	f.step(24 * time.Hour)
	if n := f.on("2.0"); n != 10 {
		t.Fatalf("halted campaign kept offering: %d", n)
	}
	// A device outside the campaign keeps its own target through the rollback.
	ctx := context.Background()
	if err := f.db.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "other", TargetVersion: "9", CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.camps.Rollback(ctx, c.ID); err != nil || n != 10 {
		t.Fatalf("rollback: %d %v", n, err)
	}
	if _, err := f.db.FindTarget(ctx, "dev-000"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("canary target after rollback: %v", err)
	}
	if tg, err := f.db.FindTarget(ctx, "other"); err != nil || tg.TargetVersion != "9" {
		t.Fatalf("other device: %v %v", tg, err)
	}
}

func TestCampaignFailureThresholdAndTimeouts(t *testing.T) { eachBackend(t, testFailureThreshold) }

func testFailureThreshold(t *testing.T, open func() lodestone.Store) {
	f := newFleet(t, open, 20, nil)
	c := f.campaign([]int{50, 100})
	ctx := context.Background()
	// Nobody installs: the devices never check in, so the offers time out and the failures halt the campaign.
	f.now = f.now.Add(3 * time.Hour)
	if err := f.camps.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.status(c.ID)
	if got.Status != lodestone.CampaignHalted || !strings.Contains(got.HaltReason, "10 of 10") {
		t.Fatalf("status %s %q", got.Status, got.HaltReason)
	}
	if _, err := f.camps.Activate(ctx, c.ID); err != nil { // an operator resumes after review
		t.Fatal(err)
	}
	if err := f.camps.Pause(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.camps.Pause(ctx, c.ID); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("pause twice: %v", err)
	}
}

func TestUnhealthy(t *testing.T) {
	for _, tc := range []struct {
		h   lodestone.CampaignHealth
		bad bool
	}{
		{lodestone.CampaignHealth{NewHours: 10, OldHours: 100, NewFaults: 1, OldFaults: 0}, false}, // too few
		{lodestone.CampaignHealth{NewHours: 10, OldHours: 100, NewFaults: 3, OldFaults: 0}, true},
		{lodestone.CampaignHealth{NewHours: 50, OldHours: 1140, NewFaults: 2, OldFaults: 15}, false}, // chance
		{lodestone.CampaignHealth{NewHours: 50, OldHours: 1140, NewFaults: 25, OldFaults: 15}, true},
		{lodestone.CampaignHealth{NewHours: 10, OldHours: 100, NewFaults: 2, OldFaults: 10}, false},
		{lodestone.CampaignHealth{NewHours: 10, OldHours: 100, NewReboots: 5, OldReboots: 10}, true},
		{lodestone.CampaignHealth{NewHours: 0, OldHours: 100, NewFaults: 5}, false},
	} {
		if _, bad := ota.Unhealthy(tc.h, 2); bad != tc.bad {
			t.Errorf("%+v: bad=%v", tc.h, bad)
		}
	}
}

func TestCampaignTargetsGroup(t *testing.T) { eachBackend(t, testTargetsGroup) }

// testTargetsGroup rolls a campaign out to the members of a group only, narrowed by the version they run.
func testTargetsGroup(t *testing.T, open func() lodestone.Store) {
	ctx := context.Background()
	f := newFleet(t, open, 20, nil)
	g := &lodestone.Group{Name: "rack-7", CreatedAt: f.now}
	if err := f.db.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	members := []string{"dev-002", "dev-005", "dev-011", "dev-017", "dev-019"}
	for _, id := range members {
		if err := f.db.AddGroupDevice(ctx, g.ID, id, f.now); err != nil {
			t.Fatal(err)
		}
	}
	// dev-019 runs something else already: from_version leaves it out.
	f.version["dev-019"] = "0.9"
	f.step(time.Minute)
	fw := &lodestone.Firmware{Version: "2.0", BuildID: 20, SHA256: strings.Repeat("b", 64), Size: 1,
		Filename: "2.0.bin", CreatedAt: f.now}
	if err := f.db.CreateFirmware(ctx, fw); err != nil {
		t.Fatal(err)
	}
	zero := 0.0
	spec := ota.CampaignSpec{Name: "rack 7", FirmwareID: fw.ID, TargetGroupID: &g.ID, FromVersion: "1.0",
		Waves: []int{50, 100}, HealthRatio: &zero}
	c, n, err := f.camps.Create(ctx, spec)
	if err != nil || n != 4 || c.TargetGroupID == nil || *c.TargetGroupID != g.ID {
		t.Fatalf("create: %v, %d devices, %+v", err, n, c)
	}
	if got := f.status(c.ID); got.TargetGroupID == nil || *got.TargetGroupID != g.ID {
		t.Fatalf("stored group %v", got.TargetGroupID)
	}
	devs, _ := f.db.FindCampaignDevices(ctx, c.ID)
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	if want := members[:4]; !slices.Equal(ids, want) {
		t.Fatalf("campaign devices %v, want %v", ids, want)
	}
	// A group that a running campaign targets cannot be deleted.
	if err := f.db.DeleteGroup(ctx, g.ID); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("delete targeted group: %v", err)
	}
	if _, err := f.camps.Activate(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		f.step(30 * time.Minute)
	}
	if got := f.status(c.ID); got.Status != lodestone.CampaignCompleted {
		t.Fatalf("status %s %q", got.Status, got.HaltReason)
	}
	for id, v := range f.version {
		if want := map[bool]string{true: "2.0", false: "1.0"}[slices.Contains(members[:4], id)]; id != "dev-019" &&
			v != want {
			t.Errorf("%s runs %s, want %s", id, v, want)
		}
	}
	if f.version["dev-019"] != "0.9" {
		t.Errorf("dev-019 was updated")
	}
	// An unknown group, or a group with an explicit list, is refused.
	bad := int64(9999)
	spec.TargetGroupID = &bad
	if _, _, err := f.camps.Create(ctx, spec); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown group: %v", err)
	}
	spec.TargetGroupID, spec.FromVersion, spec.DeviceIDs = &g.ID, "", []string{"dev-001"}
	if _, _, err := f.camps.Create(ctx, spec); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("group and device_ids: %v", err)
	}
}
