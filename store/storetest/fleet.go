package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func sp(s string) *string { return &s }

func register(tb testing.TB, s lodestone.Store, regs ...lodestone.DeviceRegistration) []lodestone.RegisterResult {
	tb.Helper()
	res, err := s.RegisterDevices(context.Background(), regs)
	if err != nil {
		tb.Fatalf("RegisterDevices: %v", err)
	}
	if len(res) != len(regs) {
		tb.Fatalf("%d results for %d registrations", len(res), len(regs))
	}
	return res
}

func deviceIDs(tb testing.TB, s lodestone.Store, f lodestone.DeviceFilter) []string {
	tb.Helper()
	devs, err := s.FindDevices(context.Background(), f)
	if err != nil {
		tb.Fatalf("FindDevices(%+v): %v", f, err)
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.DeviceID
	}
	return ids
}

func testDeviceRegister(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// By key alone: ferrite names the device after the key, provisioned, first and last seen now.
	r := register(t, s, lodestone.DeviceRegistration{Key: 0xA300F1B2, Name: sp("pump"), Tags: sp(`["north","hvac"]`),
		ProvisionedBy: sp("factory"), At: at(0)})
	d := r[0].Device
	if r[0].Err != nil || d.DeviceID != "A300F1B2" || d.Status != lodestone.StatusProvisioned || d.DeviceKey == nil ||
		*d.DeviceKey != 0xA300F1B2 || *d.Name != "pump" || *d.ProvisionedBy != "factory" ||
		!d.ProvisionedAt.Equal(at(0)) || !d.FirstSeen.Equal(at(0)) {
		t.Fatalf("registered %+v, err %v", d, r[0].Err)
	}
	if got, err := s.FindDeviceByKey(ctx, 0xA300F1B2); err != nil || got.ID != d.ID {
		t.Fatalf("by key: %v %v", got, err)
	}
	// Registering again with no name keeps the name and changes the tags.
	r = register(t, s, lodestone.DeviceRegistration{Key: 0xA300F1B2, Tags: sp("south"), At: at(5)})
	if d2 := r[0].Device; d2.ID != d.ID || *d2.Name != "pump" || *d2.Tags != "south" || !d2.ProvisionedAt.Equal(at(5)) {
		t.Fatalf("re-registered %+v", d2)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{Tag: "north"}); len(ids) != 0 {
		t.Fatalf("old tag still matches: %v", ids)
	}
	// A device that reports gets its key by device_id and stays online.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "sensor-7", ReceivedAt: at(10), Info: info("1.0", 1)})
	r = register(t, s, lodestone.DeviceRegistration{DeviceID: "sensor-7", Key: 7, Name: sp("seven"), At: at(11)})
	if d7 := r[0].Device; r[0].Err != nil || d7.Status != lodestone.StatusOnline || *d7.DeviceKey != 7 ||
		d7.FirmwareVersion != "1.0" || !d7.LastSeen.Equal(at(10)) {
		t.Fatalf("linked %+v, err %v", d7, r[0].Err)
	}
	// Bulk: a key held by another device fails alone; the rest are stored.
	r = register(t, s,
		lodestone.DeviceRegistration{Key: 0x10, At: at(20)},
		lodestone.DeviceRegistration{DeviceID: "other", Key: 7, At: at(20)},
		lodestone.DeviceRegistration{Key: 0x11, Name: sp("b"), At: at(20)})
	if r[0].Err != nil || r[2].Err != nil || r[0].Device.DeviceID != "00000010" || *r[2].Device.Name != "b" {
		t.Fatalf("bulk good rows: %+v %+v", r[0], r[2])
	}
	if code(r[1].Err) != lodestone.ECONFLICT || r[1].Device != nil {
		t.Fatalf("bulk taken key: %+v", r[1])
	}
	if _, err := s.FindDeviceByID(ctx, "other"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("the failed row left a device: %v", err)
	}
}

func testDeviceUpdate(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(0)})
	d, err := s.UpdateDevice(ctx, "d", lodestone.DeviceUpdate{Name: sp("dee"), Tags: sp("a, b")})
	if err != nil || *d.Name != "dee" || *d.Tags != "a, b" || !d.LastSeen.Equal(at(0)) {
		t.Fatalf("update: %+v %v", d, err)
	}
	d, err = s.UpdateDevice(ctx, "d", lodestone.DeviceUpdate{Tags: sp("c")})
	if err != nil || *d.Name != "dee" || *d.Tags != "c" {
		t.Fatalf("update keeps name: %+v %v", d, err)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{Tag: "c"}); !slices.Equal(ids, []string{"d"}) {
		t.Fatalf("tag c: %v", ids)
	}
	if _, err := s.UpdateDevice(ctx, "nope", lodestone.DeviceUpdate{Name: sp("x")}); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("update missing: %v", err)
	}
}

func testDeviceListFilters(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// Four devices; b and c share a last contact, so only the id orders them.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(1), Info: info("1.0", 1)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "b", ReceivedAt: at(2), Info: info("2.0", 2)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "c", ReceivedAt: at(2), Info: info("2.0", 2)})
	register(t, s, lodestone.DeviceRegistration{DeviceID: "Z", Key: 9, Name: sp("zed"), Tags: sp("lab,roof"),
		At: at(3)})
	s.UpdateDevice(ctx, "b", lodestone.DeviceUpdate{Name: sp("bee"), Tags: sp(`["roof"]`)})
	g := &lodestone.Group{Name: "g", CreatedAt: at(0)}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c", "a"} {
		if err := s.AddGroupDevice(ctx, g.ID, id, at(4)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		f    lodestone.DeviceFilter
		want []string
	}{
		{lodestone.DeviceFilter{}, []string{"Z", "c", "b", "a"}},
		{lodestone.DeviceFilter{Ascending: true}, []string{"a", "b", "c", "Z"}},
		{lodestone.DeviceFilter{GroupID: g.ID}, []string{"c", "a"}},
		{lodestone.DeviceFilter{Tag: "roof"}, []string{"Z", "b"}},
		{lodestone.DeviceFilter{Tag: "roof", GroupID: g.ID}, []string{}},
		{lodestone.DeviceFilter{FirmwareVersion: "2.0"}, []string{"c", "b"}},
		{lodestone.DeviceFilter{Status: lodestone.StatusProvisioned}, []string{"Z"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortDeviceID, Ascending: true}, []string{"Z", "a", "b", "c"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortName, Ascending: true}, []string{"b", "Z", "a", "c"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortName}, []string{"Z", "b", "c", "a"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortFirmware, Ascending: true}, []string{"Z", "a", "b", "c"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortID, Ascending: true, Offset: 1, Limit: 2}, []string{"b", "c"}},
		{lodestone.DeviceFilter{Sort: lodestone.SortFirstSeen, Limit: 2}, []string{"Z", "c"}},
	} {
		if got := deviceIDs(t, s, c.f); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.f, got, c.want)
		}
	}
	if _, err := s.FindDevices(ctx, lodestone.DeviceFilter{Sort: "bogus"}); code(err) != lodestone.EINVALID {
		t.Fatalf("bogus order: %v", err)
	}
}

func testDeviceDelete(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	for _, id := range []string{"gone", "kept"} {
		write(t, s, &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: at(1), Info: info("1.0", 1),
			Metrics:    []lodestone.Metric{{Key: "t", Type: lodestone.MetricGauge, Value: 1}},
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 5}},
			Faults:     []lodestone.Fault{{FaultType: 1}},
			Reboots:    []lodestone.Reboot{{Reason: 2}}})
		if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: id, TargetVersion: "2.0", CreatedAt: at(2)}); err != nil {
			t.Fatal(err)
		}
		if err := creds(t, s).CreateToken(ctx, &lodestone.Token{Kind: lodestone.TokenDevice, Name: "k",
			DeviceID: id, Hint: "lsd_", Hash: "hash-" + id, CreatedBy: "t", CreatedAt: at(2)}); err != nil {
			t.Fatal(err)
		}
	}
	g := &lodestone.Group{Name: "g", CreatedAt: at(0)}
	s.CreateGroup(ctx, g)
	s.AddGroupDevice(ctx, g.ID, "gone", at(3))
	if err := s.DeleteDevice(ctx, "gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.FindDeviceByID(ctx, "gone"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("device still there: %v", err)
	}
	all := lodestone.TelemetryFilter{Limit: 100}
	m, _ := s.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: all})
	h, _ := s.FindHeartbeats(ctx, all)
	f, _ := s.FindFaults(ctx, all)
	r, _ := s.FindReboots(ctx, all)
	if len(m) != 1 || len(h) != 1 || len(f) != 1 || len(r) != 1 || m[0].DeviceID != "kept" || h[0].DeviceID != "kept" {
		t.Fatalf("left after delete: %d metrics, %d heartbeats, %d faults, %d reboots", len(m), len(h), len(f), len(r))
	}
	if _, err := s.FindTarget(ctx, "gone"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("target kept: %v", err)
	}
	if _, err := s.FindTarget(ctx, "kept"); err != nil {
		t.Fatalf("other target: %v", err)
	}
	keys, _ := creds(t, s).FindTokens(ctx, lodestone.TokenFilter{Kind: lodestone.TokenDevice})
	if len(keys) != 1 || keys[0].DeviceID != "kept" {
		t.Fatalf("device keys after delete: %+v", keys)
	}
	if _, err := creds(t, s).FindTokenByHash(ctx, "hash-gone"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("deleted device's key still authenticates: %v", err)
	}
	if gg, _ := s.FindGroup(ctx, g.ID); gg.DeviceCount != 0 {
		t.Fatalf("membership kept: %+v", gg)
	}
	if err := s.DeleteDevice(ctx, "gone"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
	// The same device_id reporting again starts afresh.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "gone", ReceivedAt: at(9)})
	if d := mustDevice(t, s, "gone"); !d.FirstSeen.Equal(at(9)) {
		t.Fatalf("new device first seen %v", d.FirstSeen)
	}
}

func testGroups(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	b := &lodestone.Group{Name: "beta", Description: sp("second"), CreatedAt: at(1)}
	a := &lodestone.Group{Name: "alpha", CreatedAt: at(2)}
	for _, g := range []*lodestone.Group{b, a} {
		if err := s.CreateGroup(ctx, g); err != nil || g.ID == 0 {
			t.Fatalf("create %q: %v", g.Name, err)
		}
	}
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "alpha", CreatedAt: at(3)}); code(err) != lodestone.ECONFLICT {
		t.Fatalf("duplicate name: %v", err)
	}
	gs, err := s.FindGroups(ctx)
	if err != nil || len(gs) != 2 || gs[0].Name != "alpha" || gs[1].Name != "beta" || *gs[1].Description != "second" ||
		!gs[1].CreatedAt.Equal(at(1)) {
		t.Fatalf("groups %+v %v", gs, err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d1", ReceivedAt: at(1)},
		&lodestone.DeviceBatch{DeviceID: "d2", ReceivedAt: at(2)})
	if err := s.AddGroupDevice(ctx, a.ID, "d1", at(4)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroupDevice(ctx, a.ID, "d1", at(4)); err != lodestone.ErrAlreadyInGroup {
		t.Fatalf("twice: %v", err)
	}
	if err := s.AddGroupDevice(ctx, a.ID, "nope", at(4)); err != lodestone.ErrGroupOrDevice {
		t.Fatalf("unknown device: %v", err)
	}
	if err := s.AddGroupDevice(ctx, 9999, "d1", at(4)); err != lodestone.ErrGroupOrDevice {
		t.Fatalf("unknown group: %v", err)
	}
	s.AddGroupDevice(ctx, a.ID, "d2", at(4))
	s.AddGroupDevice(ctx, b.ID, "d2", at(4))
	if g, err := s.FindGroup(ctx, a.ID); err != nil || g.DeviceCount != 2 || g.Description != nil {
		t.Fatalf("alpha %+v %v", g, err)
	}
	if err := s.RemoveGroupDevice(ctx, a.ID, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveGroupDevice(ctx, a.ID, "d1"); err != lodestone.ErrMembershipNotFound {
		t.Fatalf("remove twice: %v", err)
	}
	if err := s.RemoveGroupDevice(ctx, a.ID, "nope"); err != lodestone.ErrMembershipNotFound {
		t.Fatalf("remove unknown device: %v", err)
	}
	g, err := s.UpdateGroup(ctx, a.ID, lodestone.GroupUpdate{Description: sp("first")})
	if err != nil || g.Name != "alpha" || *g.Description != "first" || g.DeviceCount != 1 {
		t.Fatalf("update %+v %v", g, err)
	}
	if _, err := s.UpdateGroup(ctx, a.ID, lodestone.GroupUpdate{Name: sp("beta")}); code(err) != lodestone.ECONFLICT {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, 9999, lodestone.GroupUpdate{Name: sp("x")}); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("update missing: %v", err)
	}
	// A campaign that has not ended holds its group; one that has ended does not.
	fw := firmware(t, s, "g.bin", "2.0", 2)
	c := &lodestone.Campaign{Name: "c", FirmwareID: fw.ID, TargetVersion: "2.0", Strategy: "immediate",
		TargetGroupID: &b.ID, RolloutPercent: 100, Waves: []int{100}, OfferTimeout: 1, InstallTimeout: 1,
		CreatedAt: at(5), UpdatedAt: at(5)}
	if err := s.CreateCampaign(ctx, c, []string{"d2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, b.ID); code(err) != lodestone.ECONFLICT {
		t.Fatalf("delete a targeted group: %v", err)
	}
	if _, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignAborted, false,
		at(6)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, b.ID); err != nil {
		t.Fatalf("delete after the campaign ended: %v", err)
	}
	if _, err := s.FindGroup(ctx, b.ID); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("deleted group found: %v", err)
	}
	if err := s.DeleteGroup(ctx, b.ID); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{GroupID: b.ID}); len(ids) != 0 {
		t.Fatalf("members of a deleted group: %v", ids)
	}
}

func testDeviceImport(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	key := uint32(0xBEEF)
	prov := at(1)
	d := &lodestone.Device{DeviceID: "imp", FirmwareVersion: "0.9", BuildID: 1 << 63, Status: lodestone.StatusOffline,
		FirstSeen: at(-100), LastSeen: at(-10), DeviceKey: &key, Name: sp("old"), Tags: sp("x,y"),
		ProvisionedBy: sp("ops"), ProvisionedAt: &prov}
	if err := s.ImportDevice(ctx, d); err != nil || d.ID == 0 {
		t.Fatalf("import: %v", err)
	}
	got := mustDevice(t, s, "imp")
	if got.BuildID != 1<<63 || got.Status != lodestone.StatusOffline || !got.FirstSeen.Equal(at(-100)) ||
		!got.LastSeen.Equal(at(-10)) || *got.DeviceKey != key || *got.Tags != "x,y" || !got.ProvisionedAt.Equal(prov) {
		t.Fatalf("imported %+v", got)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{Tag: "y"}); !slices.Equal(ids, []string{"imp"}) {
		t.Fatalf("imported tags: %v", ids)
	}
	// Merged with a device lodestone already knows: its newer contact and its name win.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "live", ReceivedAt: at(50), Info: info("2.0", 2)})
	s.UpdateDevice(ctx, "live", lodestone.DeviceUpdate{Name: sp("mine")})
	if err := s.ImportDevice(ctx, &lodestone.Device{DeviceID: "live", FirmwareVersion: "1.0", Status: "offline",
		FirstSeen: at(-5), LastSeen: at(0), Name: sp("theirs")}); err != nil {
		t.Fatal(err)
	}
	l := mustDevice(t, s, "live")
	if l.FirmwareVersion != "2.0" || l.Status != lodestone.StatusOnline || !l.FirstSeen.Equal(at(-5)) ||
		!l.LastSeen.Equal(at(50)) || *l.Name != "mine" {
		t.Fatalf("merged %+v", l)
	}
	// A key another device holds is a conflict.
	err := s.ImportDevice(ctx, &lodestone.Device{DeviceID: "thief", FirstSeen: at(0), LastSeen: at(0), DeviceKey: &key})
	if code(err) != lodestone.ECONFLICT {
		t.Fatalf("taken key: %v", err)
	}
}
