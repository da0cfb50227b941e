package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func firmware(tb testing.TB, s lodestone.Store, name, version string, build uint64) *lodestone.Firmware {
	tb.Helper()
	f := &lodestone.Firmware{Version: version, BuildID: build, SHA256: fwsha(name), Size: 1000, Filename: name,
		CreatedAt: at(0)}
	if err := s.CreateFirmware(context.Background(), f); err != nil {
		tb.Fatalf("CreateFirmware: %v", err)
	}
	return f
}

// fwsha makes a distinct valid-looking digest from a name.
func fwsha(name string) string {
	b := []byte("0000000000000000000000000000000000000000000000000000000000000000")
	for i := 0; i < len(name) && i < 64; i++ {
		b[i] = "0123456789abcdef"[name[i]%16]
	}
	return string(b)
}

func code(err error) string { return lodestone.ErrorCode(err) }

func testFirmware(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	signer := "ci"
	f := &lodestone.Firmware{Version: "1.2.0", BuildID: 1<<63 + 5, SHA256: fwsha("a"), Size: 42, Filename: "a.bin",
		Signer: &signer, Notes: "fixes", CreatedAt: at(1)}
	if err := s.CreateFirmware(ctx, f); err != nil || f.ID == 0 {
		t.Fatalf("create: %v %d", err, f.ID)
	}
	dup := *f
	if err := s.CreateFirmware(ctx, &dup); code(err) != lodestone.ECONFLICT {
		t.Fatalf("duplicate filename: %v", err)
	}
	g, err := s.FindFirmwareByID(ctx, f.ID)
	if err != nil || g.Version != "1.2.0" || g.BuildID != 1<<63+5 || *g.Signer != "ci" || g.Notes != "fixes" ||
		!g.CreatedAt.Equal(at(1)) || g.Size != 42 {
		t.Fatalf("find: %+v %v", g, err)
	}
	if _, err := s.FindFirmwareByID(ctx, 999); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("missing: %v", err)
	}
	firmware(t, s, "b.bin", "1.3.0", 2)
	list, err := s.FindFirmware(ctx)
	if err != nil || len(list) != 2 || list[0].Filename != "a.bin" {
		t.Fatalf("list newest first: %v %v", list, err)
	}
	// An operator's artifact is not FUOTA's: PUT /files under its name is a conflict, and nothing changes.
	rep := &lodestone.Firmware{Version: "a.bin", SHA256: fwsha("z"), Size: 7, Filename: "a.bin", CreatedAt: at(5)}
	if _, err := s.PutFUOTAFirmware(ctx, rep); code(err) != lodestone.ECONFLICT {
		t.Fatalf("FUOTA put over an operator artifact: %v", err)
	}
	if g, _ := s.FindFirmwareByFilename(ctx, "a.bin"); g.SHA256 != fwsha("a") || g.Size != 42 ||
		g.Origin != lodestone.OriginOperator || !g.Signable() {
		t.Fatalf("after refused put: %+v", g)
	}
	testFUOTAFirmware(t, s)
	if _, err := s.DeleteFirmware(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFirmware(ctx, f.ID); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
}

func testOTATargets(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// Asked while no target exists (a backend may remember that for a moment), then a target is set: the next
	// batched lookup must see it.
	if none, err := s.FindTargetsOf(ctx, []string{"d1"}); err != nil || len(none) != 0 {
		t.Fatalf("FindTargetsOf before any target: %v %v", none, err)
	}
	url := "https://x/fw.bin"
	tg := &lodestone.OTATarget{DeviceID: "d1", TargetVersion: "2.0", TargetBuildID: 7, FirmwareURL: &url,
		CreatedAt: at(1)}
	if err := s.SetTarget(ctx, tg); err != nil || tg.ID == 0 {
		t.Fatal(err)
	}
	// A nil URL keeps the stored one (ferrite's upsert).
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d1", TargetVersion: "2.1", CreatedAt: at(2)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTarget(ctx, "d1")
	if err != nil || got.TargetVersion != "2.1" || got.FirmwareURL == nil || *got.FirmwareURL != url ||
		!got.CreatedAt.Equal(at(2)) || got.TargetBuildID != 0 {
		t.Fatalf("after upsert: %+v %v", got, err)
	}
	missing := int64(12345)
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d2", TargetVersion: "x", FirmwareID: &missing,
		CreatedAt: at(3)}); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown firmware: %v", err)
	}
	f := firmware(t, s, "fw.bin", "3.0", 0)
	from := "1.0"
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d2", TargetVersion: "3.0", FirmwareID: &f.ID,
		FromVersion: &from, CreatedAt: at(3)}); err != nil {
		t.Fatal(err)
	}
	// The batched form finds exactly the devices that have a target, with the same rows.
	some, err := s.FindTargetsOf(ctx, []string{"d2", "nobody", "d1", "d1"})
	if err != nil || len(some) != 2 || some["d1"].TargetVersion != "2.1" || some["d2"].TargetVersion != "3.0" {
		t.Fatalf("FindTargetsOf: %+v %v", some, err)
	}
	if none, err := s.FindTargetsOf(ctx, []string{"nobody"}); err != nil || len(none) != 0 {
		t.Fatalf("FindTargetsOf without targets: %+v %v", none, err)
	}
	list, err := s.FindTargets(ctx)
	if err != nil || len(list) != 2 || list[0].DeviceID != "d2" || *list[0].FromVersion != "1.0" ||
		*list[0].FirmwareID != f.ID {
		t.Fatalf("list: %v %v", list, err)
	}
	// An artifact a target names cannot be deleted.
	if _, err := s.DeleteFirmware(ctx, f.ID); code(err) != lodestone.ECONFLICT {
		t.Fatalf("delete an artifact a target uses: %v", err)
	}
	if got, _ := s.FindTarget(ctx, "d2"); got.FirmwareID == nil || *got.FirmwareID != f.ID ||
		got.Origin != lodestone.OriginOperator {
		t.Fatalf("target after refused delete: %+v", got)
	}
	testFUOTATargets(t, s, f)
	if err := s.DeleteTarget(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTarget(ctx, "d1"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
}

func newCampaign(tb testing.TB, s lodestone.Store, fw *lodestone.Firmware, devices ...string) *lodestone.Campaign {
	tb.Helper()
	c := &lodestone.Campaign{Name: "c", FirmwareID: fw.ID, TargetVersion: fw.Version, Strategy: "canary",
		RolloutPercent: 10, FailureThreshold: 5, Waves: []int{10, 50, 100}, SoakTime: time.Hour, HealthRatio: 2,
		OfferTimeout: time.Hour, InstallTimeout: time.Hour, CreatedAt: at(0), UpdatedAt: at(0)}
	if err := s.CreateCampaign(context.Background(), c, devices); err != nil {
		tb.Fatalf("CreateCampaign: %v", err)
	}
	return c
}

func testCampaignLifecycle(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fw := firmware(t, s, "new.bin", "2.0", 20)
	missing := &lodestone.Campaign{Name: "x", FirmwareID: 999, Waves: []int{100}}
	if err := s.CreateCampaign(ctx, missing, nil); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("campaign for unknown firmware: %v", err)
	}
	// d0 had a hand-set target before; d9 is outside the campaign and must never change.
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d0", TargetVersion: "1.5", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d9", TargetVersion: "9.9", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	c := newCampaign(t, s, fw, "d0", "d1", "d2", "d3", "d1")
	got, err := s.FindCampaign(ctx, c.ID)
	if err != nil || got.Status != lodestone.CampaignCreated || got.Wave != -1 || len(got.Waves) != 3 ||
		got.SoakTime != time.Hour || got.HealthRatio != 2 {
		t.Fatalf("find: %+v %v", got, err)
	}
	if cnt, _ := s.CountCampaignDevices(ctx, c.ID); cnt.Pending != 4 || cnt.Total() != 4 {
		t.Fatalf("counts: %+v", cnt)
	}
	if _, err := s.DeleteFirmware(ctx, fw.ID); code(err) != lodestone.ECONFLICT {
		t.Fatalf("delete used firmware: %v", err)
	}
	if _, err := s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignPaused}, lodestone.CampaignActive, "",
		at(1)); code(err) != lodestone.EINVALID {
		t.Fatalf("bad transition: %v", err)
	}
	act, err := s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(1))
	if err != nil || act.StartedAt == nil || !act.StartedAt.Equal(at(1)) {
		t.Fatalf("activate: %+v %v", act, err)
	}
	if n, err := s.OfferWave(ctx, c.ID, 0, 2, at(2)); err != nil || n != 2 {
		t.Fatalf("offer: %d %v", n, err)
	}
	tg, err := s.FindTarget(ctx, "d0")
	if err != nil || tg.TargetVersion != "2.0" || tg.TargetBuildID != 20 || *tg.CampaignID != c.ID ||
		*tg.FirmwareID != fw.ID || *tg.FirmwareURL == "" {
		t.Fatalf("campaign target: %+v %v", tg, err)
	}
	devs, _ := s.FindCampaignDevices(ctx, c.ID)
	if len(devs) != 4 || devs[0].Status != lodestone.OTAOffered || devs[0].PrevTarget == nil ||
		devs[0].PrevTarget.TargetVersion != "1.5" || devs[1].PrevTarget != nil || devs[2].Status != lodestone.OTAPending {
		t.Fatalf("devices: %+v %+v %+v", devs[0], devs[1], devs[2])
	}
	// Progress: d0 downloads then installs; a stale "downloading" after install changes nothing.
	for _, st := range []string{lodestone.OTADownloading, lodestone.OTAInstalled, lodestone.OTADownloading} {
		if _, err := s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "d0", Status: st}, at(3)); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "d9", Status: lodestone.OTAFailed}, at(3)); st != "" {
		t.Fatalf("report outside a campaign: %q", st)
	}
	// d1 never starts: it times out.
	if n, err := s.ExpireCampaignDevices(ctx, c.ID, at(10), at(10), at(11)); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	cnt, _ := s.CountCampaignDevices(ctx, c.ID)
	if cnt.Installed != 1 || cnt.Failed != 1 || cnt.Pending != 2 {
		t.Fatalf("counts: %+v", cnt)
	}
	c2, _ := s.FindCampaign(ctx, c.ID)
	if c2.Wave != 0 || c2.WaveStartedAt == nil || !c2.WaveStartedAt.Equal(at(2)) {
		t.Fatalf("wave: %+v", c2)
	}
	// d2 had a target naming an artifact that the running campaign saved: it cannot be deleted, and rollback gives
	// it back.
	old := firmware(t, s, "old.bin", "1.0", 1)
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d2", TargetVersion: "1.0", FirmwareID: &old.ID,
		CreatedAt: at(12)}); err != nil {
		t.Fatal(err)
	}
	// (d2 is still pending: give it its wave, then try to delete the old artifact.)
	if n, err := s.OfferWave(ctx, c.ID, 1, 1, at(13)); err != nil || n != 1 {
		t.Fatalf("offer d2: %d %v", n, err)
	}
	if _, err := s.DeleteFirmware(ctx, old.ID); code(err) != lodestone.ECONFLICT {
		t.Fatalf("delete a running campaign's saved artifact: %v", err)
	}
	// Rollback gives d0 its hand-set target back, removes d1's, and leaves d9 and the pending devices alone.
	n, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignRolledBack, true, at(20))
	if err != nil || n != 3 {
		t.Fatalf("rollback: %d %v", n, err)
	}
	if tg, _ := s.FindTarget(ctx, "d2"); tg.TargetVersion != "1.0" || tg.FirmwareID == nil ||
		*tg.FirmwareID != old.ID {
		t.Fatalf("d2 after rollback: %+v", tg)
	}
	if tg, _ := s.FindTarget(ctx, "d0"); tg.TargetVersion != "1.5" || tg.CampaignID != nil {
		t.Fatalf("d0 after rollback: %+v", tg)
	}
	if _, err := s.FindTarget(ctx, "d1"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("d1 after rollback: %v", err)
	}
	if tg, _ := s.FindTarget(ctx, "d9"); tg.TargetVersion != "9.9" {
		t.Fatalf("d9 touched: %+v", tg)
	}
	if _, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignRolledBack, true,
		at(21)); code(err) != lodestone.EINVALID {
		t.Fatalf("rollback twice: %v", err)
	}
	list, err := s.FindCampaigns(ctx, lodestone.CampaignRolledBack)
	if err != nil || len(list) != 1 {
		t.Fatalf("filter: %v %v", list, err)
	}
	if list, _ := s.FindCampaigns(ctx, lodestone.CampaignActive); len(list) != 0 {
		t.Fatalf("active: %v", list)
	}
}

func testCampaignAbortKeepsInstalled(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fw := firmware(t, s, "n.bin", "2.0", 0)
	c := newCampaign(t, s, fw, "a", "b")
	s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(1))
	s.OfferWave(ctx, c.ID, 0, 2, at(1))
	s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "a", Status: lodestone.OTAInstalled}, at(2))
	// Another campaign (or an operator) takes b over: abort must not undo that.
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "b", TargetVersion: "7", CreatedAt: at(3)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignAborted, false, at(4))
	if err != nil || n != 0 {
		t.Fatalf("abort: %d %v", n, err)
	}
	if tg, _ := s.FindTarget(ctx, "a"); tg == nil || tg.TargetVersion != "2.0" {
		t.Fatalf("installed device lost its target: %+v", tg)
	}
	if tg, _ := s.FindTarget(ctx, "b"); tg.TargetVersion != "7" {
		t.Fatalf("b: %+v", tg)
	}
}

// testCampaignHealth: hours come from contacts (the time since a device's previous one, credited to the version
// it reports), faults and unexpected reboots count for the version they arrived on; see migration 00150.
func testCampaignHealth(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fw := firmware(t, s, "h.bin", "2.0", 0)
	for _, d := range []string{"n1", "n2", "o1", "o2"} {
		write(t, s, &lodestone.DeviceBatch{DeviceID: d, ReceivedAt: at(0), Info: info("1.0", 1)})
	}
	c := newCampaign(t, s, fw, "n1", "n2", "o1", "o2")
	s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(0))
	s.OfferWave(ctx, c.ID, 0, 2, at(0)) // n1, n2
	s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "n1", Status: lodestone.OTAInstalled}, at(600))
	s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "n2", Status: lodestone.OTAInstalled}, at(1800))
	write(t, s,
		&lodestone.DeviceBatch{DeviceID: "n1", ReceivedAt: at(600), Info: info("2.0", 2), Faults: []lodestone.Fault{{}, {}},
			Reboots: []lodestone.Reboot{{Reason: 4}, {Reason: 11}}},
		&lodestone.DeviceBatch{DeviceID: "n2", ReceivedAt: at(600), Info: info("1.0", 1), Faults: []lodestone.Fault{{}}}, // before install
		&lodestone.DeviceBatch{DeviceID: "o1", ReceivedAt: at(900), Faults: []lodestone.Fault{{}},
			Reboots: []lodestone.Reboot{{Reason: 3}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "n2", ReceivedAt: at(1800), Info: info("2.0", 2)})
	for _, d := range []string{"n1", "n2", "o1", "o2"} {
		write(t, s, &lodestone.DeviceBatch{DeviceID: d, ReceivedAt: at(3000)})
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "o2", ReceivedAt: at(7200), Faults: []lodestone.Fault{{}}}) // after now
	h, err := s.CampaignHealth(ctx, c.ID, at(0), at(3600))
	if err != nil {
		t.Fatal(err)
	}
	// New: n1 600 s + 2400 s, n2 1200 s + 1200 s. Old: n2 600 s, o1 900 s + 2100 s, o2 3000 s.
	want := lodestone.CampaignHealth{NewDevices: 2, OldDevices: 3, NewHours: 1.5, OldHours: 6600.0 / 3600, NewFaults: 2,
		OldFaults: 2, NewReboots: 1, OldReboots: 1}
	if h.NewDevices != want.NewDevices || h.OldDevices != want.OldDevices || !near(h.NewHours, want.NewHours) ||
		!near(h.OldHours, want.OldHours) || h.NewFaults != want.NewFaults || h.OldFaults != want.OldFaults ||
		h.NewReboots != want.NewReboots || h.OldReboots != want.OldReboots {
		t.Fatalf("health %+v, want %+v", h, want)
	}
}

// testFUOTAFirmware: a FUOTA upload is a new, immutable artifact every time; its path names the newest one.
func testFUOTAFirmware(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	up := func(name, sum, version string) (*lodestone.Firmware, bool) {
		t.Helper()
		f := &lodestone.Firmware{Version: version, SHA256: fwsha(sum), Size: 10, Filename: name, CreatedAt: at(6)}
		created, err := s.PutFUOTAFirmware(ctx, f)
		if err != nil {
			t.Fatalf("PutFUOTAFirmware %s: %v", name, err)
		}
		return f, created
	}
	v1, created := up("app.bin", "p", "app.bin")
	if !created || v1.Filename != "app.bin" || v1.Origin != lodestone.OriginFUOTA || v1.FUOTAPath == nil ||
		*v1.FUOTAPath != "app.bin" || v1.Signable() {
		t.Fatalf("first upload: %+v %v", v1, created)
	}
	if again, created := up("app.bin", "p", "app.bin"); created || again.ID != v1.ID {
		t.Fatalf("same upload again: %+v %v", again, created)
	}
	v2, created := up("app.bin", "q", "app.bin")
	if !created || v2.ID == v1.ID || v2.Filename == "app.bin" || *v2.FUOTAPath != "app.bin" {
		t.Fatalf("second upload: %+v %v", v2, created)
	}
	// The first upload is unchanged; the path answers the newest.
	if g, _ := s.FindFirmwareByID(ctx, v1.ID); g.SHA256 != fwsha("p") || g.Filename != "app.bin" {
		t.Fatalf("first upload changed: %+v", g)
	}
	if g, err := s.FindFirmwareByFUOTAPath(ctx, "app.bin"); err != nil || g.ID != v2.ID {
		t.Fatalf("by path: %+v %v", g, err)
	}
	if _, err := s.FindFirmwareByFUOTAPath(ctx, "a.bin"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("an operator artifact by FUOTA path: %v", err)
	}
	// An older upload's own name is not a path FUOTA may take.
	if _, err := s.PutFUOTAFirmware(ctx, &lodestone.Firmware{Version: "x", SHA256: fwsha("r"), Size: 1,
		Filename: v2.Filename, CreatedAt: at(7)}); code(err) != lodestone.ECONFLICT {
		t.Fatalf("put over a suffixed name: %v", err)
	}
	// Approval makes it signable, once; the first approval stays.
	a, err := s.ApproveFirmware(ctx, v2.ID, "olga", at(8))
	if err != nil || !a.Signable() || a.ApprovedBy != "olga" || !a.ApprovedAt.Equal(at(8)) {
		t.Fatalf("approve: %+v %v", a, err)
	}
	if a, _ := s.ApproveFirmware(ctx, v2.ID, "mallory", at(9)); a.ApprovedBy != "olga" {
		t.Fatalf("approved twice: %+v", a)
	}
	if _, err := s.ApproveFirmware(ctx, 99999, "olga", at(9)); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("approve missing: %v", err)
	}
	// A new upload is not approved, whatever the one before was.
	if v3, _ := up("app.bin", "s", "app.bin"); v3.Signable() || v3.ApprovedAt != nil {
		t.Fatalf("new upload inherited approval: %+v", v3)
	}
}

// testFUOTATargets: the FUOTA login writes only targets it set, for devices lodestone does not manage.
func testFUOTATargets(t *testing.T, s lodestone.Store, operatorFW *lodestone.Firmware) {
	ctx := context.Background()
	v1 := &lodestone.Firmware{Version: "esp.bin", SHA256: fwsha("e1"), Size: 3, Filename: "esp.bin", CreatedAt: at(4)}
	if _, err := s.PutFUOTAFirmware(ctx, v1); err != nil {
		t.Fatal(err)
	}
	app := "1.0"
	fuota := func(dev string, fw *lodestone.Firmware) error {
		return s.SetFUOTATarget(ctx, &lodestone.OTATarget{DeviceID: dev, TargetVersion: fw.Version,
			FirmwareID: &fw.ID, FromVersion: &app, CreatedAt: at(5)})
	}
	if err := fuota("esp-1", v1); err != nil {
		t.Fatal(err)
	}
	if tg, _ := s.FindTarget(ctx, "esp-1"); tg.Origin != lodestone.OriginFUOTA || *tg.FirmwareID != v1.ID {
		t.Fatalf("FUOTA target: %+v", tg)
	}
	if err := fuota("esp-1", v1); err != nil {
		t.Fatalf("FUOTA rewrites its own target: %v", err)
	}
	// Not over an operator's target (d2), not for a lodestone device, not naming an operator's artifact.
	if err := fuota("d2", v1); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA over an operator target: %v", err)
	}
	if err := s.DeleteFUOTATarget(ctx, "d2"); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA deletes an operator target: %v", err)
	}
	if tg, _ := s.FindTarget(ctx, "d2"); tg.Origin != lodestone.OriginOperator || *tg.FirmwareID != operatorFW.ID {
		t.Fatalf("operator target changed: %+v", tg)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "ferrite-1", ReceivedAt: at(0), Info: info("1.0", 1)})
	if err := fuota("ferrite-1", v1); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA target for a lodestone device: %v", err)
	}
	if err := fuota("esp-2", operatorFW); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA target naming an operator artifact: %v", err)
	}
	// A new upload under the path moves FUOTA's targets, not an operator's target naming the old upload.
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "esp-op", TargetVersion: v1.Version,
		FirmwareID: &v1.ID, CreatedAt: at(5)}); err != nil {
		t.Fatal(err)
	}
	// esp-3 got its row from FUOTA, then started reporting to lodestone: FUOTA no longer steers it.
	if err := fuota("esp-3", v1); err != nil {
		t.Fatal(err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "esp-3", ReceivedAt: at(0), Info: info("1.0", 1)})
	v2 := &lodestone.Firmware{Version: "2.0", SHA256: fwsha("e2"), Size: 4, Filename: "esp.bin", CreatedAt: at(6)}
	if _, err := s.PutFUOTAFirmware(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if tg, _ := s.FindTarget(ctx, "esp-3"); *tg.FirmwareID != v1.ID {
		t.Fatalf("a FUOTA upload moved a lodestone device's target: %+v", tg)
	}
	if err := fuota("esp-3", v2); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA target for a device that reports since: %v", err)
	}
	if err := s.DeleteFUOTATarget(ctx, "esp-3"); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA deletes the target of a device that reports since: %v", err)
	}
	if tg, _ := s.FindTarget(ctx, "esp-1"); *tg.FirmwareID != v2.ID || tg.TargetVersion != "2.0" {
		t.Fatalf("FUOTA target after a new upload: %+v", tg)
	}
	if tg, _ := s.FindTarget(ctx, "esp-op"); *tg.FirmwareID != v1.ID {
		t.Fatalf("operator target moved by a FUOTA upload: %+v", tg)
	}
	// Neither upload can be deleted while a target names it.
	for _, id := range []int64{v1.ID, v2.ID} {
		if _, err := s.DeleteFirmware(ctx, id); code(err) != lodestone.ECONFLICT {
			t.Fatalf("delete used FUOTA upload %d: %v", id, err)
		}
	}
	// A campaign takes esp-1 over: FUOTA can no longer touch it; the campaign's end gives FUOTA its target back.
	c := newCampaign(t, s, operatorFW, "esp-1", "esp-9")
	if err := fuota("esp-9", v2); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA target for a campaign member: %v", err)
	}
	s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(6))
	if n, err := s.OfferWave(ctx, c.ID, 0, 1, at(6)); err != nil || n != 1 {
		t.Fatalf("offer: %d %v", n, err)
	}
	if err := fuota("esp-1", v2); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA over a campaign target: %v", err)
	}
	if err := s.DeleteFUOTATarget(ctx, "esp-1"); code(err) != lodestone.EFORBIDDEN {
		t.Fatalf("FUOTA deletes a campaign target: %v", err)
	}
	if _, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignAborted, true,
		at(7)); err != nil {
		t.Fatal(err)
	}
	if tg, _ := s.FindTarget(ctx, "esp-1"); tg.Origin != lodestone.OriginFUOTA || *tg.FirmwareID != v2.ID {
		t.Fatalf("restored target: %+v", tg)
	}
	if err := s.DeleteFUOTATarget(ctx, "esp-1"); err != nil {
		t.Fatalf("FUOTA deletes its own target: %v", err)
	}
	if err := s.DeleteFUOTATarget(ctx, "esp-1"); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
}
