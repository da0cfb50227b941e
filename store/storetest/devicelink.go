package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// testDeviceLinkKey: a key registered alone and the DeviceInfo id whose heartbeats carry it become one device.
func testDeviceLinkKey(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	const key = 0xA300F1B2
	register(t, s, lodestone.DeviceRegistration{Key: key, Name: sp("pump"), Tags: sp("north"),
		ProvisionedBy: sp("factory"), At: at(0)})
	g := &lodestone.Group{Name: "link-group"}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroupDevice(ctx, g.ID, "A300F1B2", at(0)); err != nil {
		t.Fatal(err)
	}
	// The device posts under its own id with a heartbeat carrying the key: the placeholder is touched (ferrite).
	write(t, s, &lodestone.DeviceBatch{DeviceID: "link-dev", ReceivedAt: at(1),
		Info:       &lodestone.DeviceInfo{FirmwareVersion: "1.0.0"},
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1, DeviceKey: key}}})

	// Another device's key is never taken, and a device that has a key keeps it.
	if ok, err := s.LinkDeviceKey(ctx, "no-such-device", key); ok || err != nil {
		t.Fatalf("unknown device linked: %v %v", ok, err)
	}
	if ok, err := s.LinkDeviceKey(ctx, "link-dev", key); !ok || err != nil {
		t.Fatalf("LinkDeviceKey = %v, %v; want linked", ok, err)
	}
	d := mustDevice(t, s, "link-dev")
	if d.DeviceKey == nil || *d.DeviceKey != key || d.Name == nil || *d.Name != "pump" || d.ProvisionedBy == nil ||
		*d.ProvisionedBy != "factory" || d.FirmwareVersion != "1.0.0" {
		t.Fatalf("linked device %+v", d)
	}
	if _, err := s.FindDeviceByID(ctx, "A300F1B2"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("placeholder still there: %v", err)
	}
	if got, err := s.FindDeviceByKey(ctx, key); err != nil || got.DeviceID != "link-dev" {
		t.Fatalf("by key: %v %v", got, err)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{GroupID: g.ID}); !slices.Equal(ids, []string{"link-dev"}) {
		t.Fatalf("group members %v", ids)
	}
	if ids := deviceIDs(t, s, lodestone.DeviceFilter{Tag: "north"}); !slices.Equal(ids, []string{"link-dev"}) {
		t.Fatalf("tagged %v", ids)
	}
	// Later posts touch only the one device; linking again changes nothing.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "link-dev", ReceivedAt: at(2),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 2, DeviceKey: key}}})
	if ok, err := s.LinkDeviceKey(ctx, "link-dev", key); ok || err != nil {
		t.Fatalf("linked twice: %v %v", ok, err)
	}

	// A key whose holder has posted data of its own is a real device: it stays apart.
	const key2 = 0x0000BEEF
	register(t, s, lodestone.DeviceRegistration{Key: key2, At: at(0)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "0000BEEF", ReceivedAt: at(1),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "other-dev", ReceivedAt: at(1),
		Info:       &lodestone.DeviceInfo{FirmwareVersion: "2.0.0"},
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1, DeviceKey: key2}}})
	if ok, err := s.LinkDeviceKey(ctx, "other-dev", key2); ok || err != nil {
		t.Fatalf("a reporting device's key was linked: %v %v", ok, err)
	}
	if got, err := s.FindDeviceByKey(ctx, key2); err != nil || got.DeviceID != "0000BEEF" {
		t.Fatalf("by key: %v %v", got, err)
	}
}
