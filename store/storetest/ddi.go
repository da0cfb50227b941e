package storetest

import (
	"context"
	"maps"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func ddiStore(t *testing.T, s lodestone.Store) lodestone.DDIStore {
	t.Helper()
	d, ok := s.(lodestone.DDIStore)
	if !ok {
		t.Fatalf("%T keeps no DDI actions", s)
	}
	return d
}

// testDDIActions walks one controller through the action life cycle: a target with an artifact is one open action
// however often it is polled; it closes; the same target set again is a new action; a fetched action whose target
// goes away waits for the controller's cancel, and nothing new is offered meanwhile; one never fetched is dropped.
func testDDIActions(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	d := ddiStore(t, s)
	if offer, cancel, err := d.SyncDDIAction(ctx, "c1", at(0)); err != nil || offer != nil || cancel != nil {
		t.Fatalf("no target: %v %v %v", offer, cancel, err)
	}
	url := "https://x/fw.bin"
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "c1", TargetVersion: "1", FirmwareURL: &url,
		CreatedAt: at(1)}); err != nil {
		t.Fatal(err)
	}
	if offer, _, err := d.SyncDDIAction(ctx, "c1", at(1)); err != nil || offer != nil {
		t.Fatalf("a target without an artifact is no deployment: %v %v", offer, err)
	}
	fw := firmware(t, s, "ddi.swu", "2.0", 20)
	set := func(sec int) {
		t.Helper()
		if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "c1", TargetVersion: "2.0", FirmwareID: &fw.ID,
			CreatedAt: at(sec)}); err != nil {
			t.Fatal(err)
		}
	}
	set(2)
	a1, cancel, err := d.SyncDDIAction(ctx, "c1", at(3))
	if err != nil || a1 == nil || cancel != nil || a1.Status != lodestone.DDIOpen || a1.FirmwareID != fw.ID ||
		a1.Version != "2.0" || !a1.TargetCreatedAt.Equal(at(2)) {
		t.Fatalf("first offer: %+v %v %v", a1, cancel, err)
	}
	if again, _, err := d.SyncDDIAction(ctx, "c1", at(4)); err != nil || again == nil || again.ID != a1.ID {
		t.Fatalf("a second poll is the same action: %+v %v", again, err)
	}
	if cur, err := d.CurrentDDIAction(ctx, a1); err != nil || !cur {
		t.Fatalf("current: %v %v", cur, err)
	}
	if _, err := d.FindDDIAction(ctx, "other", a1.ID); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("another controller's action: %v", err)
	}
	a1.Status, a1.Result, a1.Execution, a1.Detail, a1.UpdatedAt = lodestone.DDIClosed, "success", "closed", "ok", at(5)
	if err := d.UpdateDDIAction(ctx, a1); err != nil {
		t.Fatal(err)
	}
	if offer, _, err := d.SyncDDIAction(ctx, "c1", at(6)); err != nil || offer != nil {
		t.Fatalf("a closed action is not offered again: %+v %v", offer, err)
	}
	got, err := d.FindDDIAction(ctx, "c1", a1.ID)
	if err != nil || got.Status != lodestone.DDIClosed || got.Result != "success" || got.Detail != "ok" {
		t.Fatalf("stored: %+v %v", got, err)
	}

	set(7) // the same artifact assigned again: a new action
	a2, _, err := d.SyncDDIAction(ctx, "c1", at(8))
	if err != nil || a2 == nil || a2.ID == a1.ID {
		t.Fatalf("reassigned: %+v %v", a2, err)
	}
	if err := d.RetrieveDDIAction(ctx, "c1", a2.ID, at(9)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTarget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	offer, cancel, err := d.SyncDDIAction(ctx, "c1", at(10))
	if err != nil || offer != nil || cancel == nil || cancel.ID != a2.ID || cancel.Status != lodestone.DDICanceling {
		t.Fatalf("target cleared after fetch: %+v %+v %v", offer, cancel, err)
	}
	set(11)
	if offer, cancel, err := d.SyncDDIAction(ctx, "c1", at(12)); err != nil || offer != nil || cancel == nil {
		t.Fatalf("a pending cancel comes first: %+v %+v %v", offer, cancel, err)
	}
	cancel.Status, cancel.UpdatedAt = lodestone.DDICanceled, at(13)
	if err := d.UpdateDDIAction(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	a3, cancel, err := d.SyncDDIAction(ctx, "c1", at(14))
	if err != nil || a3 == nil || cancel != nil || a3.ID == a2.ID {
		t.Fatalf("after the cancel: %+v %+v %v", a3, cancel, err)
	}
	// Never fetched: dropped without a cancel when the target changes.
	set(15)
	a4, cancel, err := d.SyncDDIAction(ctx, "c1", at(16))
	if err != nil || a4 == nil || cancel != nil || a4.ID == a3.ID {
		t.Fatalf("unfetched action replaced: %+v %+v %v", a4, cancel, err)
	}
	if old, err := d.FindDDIAction(ctx, "c1", a3.ID); err != nil || old.Status != lodestone.DDICanceled {
		t.Fatalf("the replaced action: %+v %v", old, err)
	}
	if list, err := d.FindDDIActions(ctx, "c1", 2); err != nil || len(list) != 2 || list[0].ID != a4.ID ||
		list[1].ID != a3.ID {
		t.Fatalf("FindDDIActions: %v %v", list, err)
	}
	// from_version: only while the device is recorded on that version.
	from := "9.9"
	if err := s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "c2", TargetVersion: "2.0", FirmwareID: &fw.ID,
		FromVersion: &from, CreatedAt: at(17)}); err != nil {
		t.Fatal(err)
	}
	if offer, _, err := d.SyncDDIAction(ctx, "c2", at(18)); err != nil || offer != nil {
		t.Fatalf("from_version not met: %+v %v", offer, err)
	}
}

func testDDIBlobsAndAttributes(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	d := ddiStore(t, s)
	sum := fwsha("blob")
	if _, err := d.BlobHashes(ctx, sum); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown blob: %v", err)
	}
	h := lodestone.BlobHashes{MD5: "m", SHA1: "s", Kind: "swu"}
	for range 2 {
		if err := d.SaveBlobHashes(ctx, sum, h); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := d.BlobHashes(ctx, sum); err != nil || got != h {
		t.Fatalf("hashes: %+v %v", got, err)
	}

	attrs := func(want map[string]string) {
		t.Helper()
		got, err := d.DeviceAttributes(ctx, "c1")
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("attributes %v %v, want %v", got, err, want)
		}
	}
	attrs(map[string]string{})
	if err := d.SetDeviceAttributes(ctx, "c1", "merge", map[string]string{"hw": "2", "sn": "A1"}, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDeviceAttributes(ctx, "c1", "merge", map[string]string{"hw": "3"}, at(2)); err != nil {
		t.Fatal(err)
	}
	attrs(map[string]string{"hw": "3", "sn": "A1"})
	if err := d.SetDeviceAttributes(ctx, "c1", "remove", map[string]string{"sn": ""}, at(3)); err != nil {
		t.Fatal(err)
	}
	attrs(map[string]string{"hw": "3"})
	if err := d.SetDeviceAttributes(ctx, "c1", "replace", map[string]string{"os": "x"}, at(4)); err != nil {
		t.Fatal(err)
	}
	attrs(map[string]string{"os": "x"})
	if err := d.SetDeviceAttributes(ctx, "c1", "bogus", nil, at(5)); code(err) != lodestone.EINVALID {
		t.Fatalf("bad mode: %v", err)
	}
}
