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
	// PUT /files replaces the bytes under the same name and reports the old blob.
	rep := &lodestone.Firmware{Version: "a.bin", SHA256: fwsha("z"), Size: 7, Filename: "a.bin", CreatedAt: at(5)}
	old, err := s.PutFirmware(ctx, rep)
	if err != nil || old == nil || old.SHA256 != fwsha("a") || rep.ID != f.ID {
		t.Fatalf("put replace: %v %v %d", old, err, rep.ID)
	}
	if used, _ := s.FirmwareBlobInUse(ctx, fwsha("a")); used {
		t.Fatal("old blob still in use")
	}
	if g, _ := s.FindFirmwareByFilename(ctx, "a.bin"); g.SHA256 != fwsha("z") || g.Size != 7 {
		t.Fatalf("after put: %+v", g)
	}
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
	// Deleting the artifact leaves the target without a firmware id.
	if _, err := s.DeleteFirmware(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FindTarget(ctx, "d2"); got.FirmwareID != nil {
		t.Fatalf("firmware id after delete: %v", *got.FirmwareID)
	}
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
	// d2 had a target naming an artifact that is deleted while the campaign runs; rollback must still work.
	old := firmware(t, s, "old.bin", "1.0", 1)
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "d2", TargetVersion: "1.0", FirmwareID: &old.ID,
		CreatedAt: at(12)}); err != nil {
		t.Fatal(err)
	}
	// (d2 is still pending: give it its wave, then delete the old artifact.)
	if n, err := s.OfferWave(ctx, c.ID, 1, 1, at(13)); err != nil || n != 1 {
		t.Fatalf("offer d2: %d %v", n, err)
	}
	if _, err := s.DeleteFirmware(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	// Rollback gives d0 its hand-set target back, removes d1's, and leaves d9 and the pending devices alone.
	n, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignRolledBack, true, at(20))
	if err != nil || n != 3 {
		t.Fatalf("rollback: %d %v", n, err)
	}
	if tg, _ := s.FindTarget(ctx, "d2"); tg.TargetVersion != "1.0" || tg.FirmwareID != nil {
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

func testCampaignHealth(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fw := firmware(t, s, "h.bin", "2.0", 0)
	for _, d := range []string{"n1", "n2", "o1", "o2"} {
		write(t, s, &lodestone.DeviceBatch{DeviceID: d, ReceivedAt: at(0), Info: info("1.0", 1)})
	}
	c := newCampaign(t, s, fw, "n1", "n2", "o1", "o2")
	s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(0))
	s.OfferWave(ctx, c.ID, 0, 2, at(0)) // n1, n2
	s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "n1", Status: lodestone.OTAInstalled}, at(0))
	s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "n2", Status: lodestone.OTAInstalled}, at(1800))
	write(t, s,
		&lodestone.DeviceBatch{DeviceID: "n1", ReceivedAt: at(600), Faults: []lodestone.Fault{{}, {}},
			Reboots: []lodestone.Reboot{{Reason: 4}, {Reason: 11}}},
		&lodestone.DeviceBatch{DeviceID: "n2", ReceivedAt: at(600), Faults: []lodestone.Fault{{}}}, // before install
		&lodestone.DeviceBatch{DeviceID: "o1", ReceivedAt: at(900), Faults: []lodestone.Fault{{}},
			Reboots: []lodestone.Reboot{{Reason: 3}}},
		&lodestone.DeviceBatch{DeviceID: "o2", ReceivedAt: at(7200), Faults: []lodestone.Fault{{}}}, // after now
	)
	h, err := s.CampaignHealth(ctx, c.ID, at(0), at(3600))
	if err != nil {
		t.Fatal(err)
	}
	want := lodestone.CampaignHealth{NewDevices: 2, OldDevices: 2, NewHours: 1.5, OldHours: 2, NewFaults: 2,
		OldFaults: 1, NewReboots: 1, OldReboots: 1}
	if h != want {
		t.Fatalf("health %+v, want %+v", h, want)
	}
}
