package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func testSessions(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ss, ok := s.(lodestone.SessionStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.SessionStore", s)
	}
	a := &lodestone.Session{Hash: "aa", UserName: "alice", Role: lodestone.RoleProvisioner, Via: "password",
		CreatedAt: at(0), LastSeen: at(0), ExpiresAt: at(3600)}
	b := &lodestone.Session{Hash: "bb", UserName: "bob", Role: lodestone.RoleViewer, Via: "oidc",
		CreatedAt: at(0), LastSeen: at(0), ExpiresAt: at(100)}
	for _, x := range []*lodestone.Session{a, b} {
		if err := ss.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ss.FindSession(ctx, "aa")
	if err != nil {
		t.Fatal(err)
	}
	if *got != *a {
		t.Fatalf("FindSession = %+v, want %+v", got, a)
	}
	if _, err := ss.FindSession(ctx, "cc"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown session: %v", err)
	}
	// Touching moves LastSeen forward only.
	if err := ss.TouchSession(ctx, "aa", at(50)); err != nil {
		t.Fatal(err)
	}
	if err := ss.TouchSession(ctx, "aa", at(10)); err != nil {
		t.Fatal(err)
	}
	if got, _ := ss.FindSession(ctx, "aa"); !got.LastSeen.Equal(at(50)) {
		t.Fatalf("LastSeen after touches = %v, want %v", got.LastSeen, at(50))
	}
	if err := ss.TouchSession(ctx, "cc", at(50)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("touch unknown: %v", err)
	}
	// At 100 s b reached its absolute timeout; a (seen at 50) is kept with an idle cutoff of 40.
	n, err := ss.DeleteExpiredSessions(ctx, at(100), at(40))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	if _, err := ss.FindSession(ctx, "bb"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("expired session still found: %v", err)
	}
	// Idle since before 60: a goes.
	if n, err := ss.DeleteExpiredSessions(ctx, at(100), at(60)); err != nil || n != 1 {
		t.Fatalf("idle DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	c := &lodestone.Session{Hash: "cc", UserName: "carol", Role: lodestone.RoleAdmin, Via: "password",
		CreatedAt: at(0), LastSeen: at(0), ExpiresAt: at(3600)}
	if err := ss.CreateSession(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := ss.DeleteSession(ctx, "cc"); err != nil {
		t.Fatal(err)
	}
	if err := ss.DeleteSession(ctx, "cc"); err != nil {
		t.Fatalf("deleting a gone session: %v", err)
	}
	if _, err := ss.FindSession(ctx, "cc"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("logged-out session still found: %v", err)
	}
}

func testDeviceCounts(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	dc, ok := s.(lodestone.DeviceCounter)
	if !ok {
		t.Fatalf("%T does not implement lodestone.DeviceCounter", s)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(1), Info: info("1.0", 1)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "b", ReceivedAt: at(2), Info: info("2.0", 2)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "c", ReceivedAt: at(2), Info: info("2.0", 2)})
	register(t, s, lodestone.DeviceRegistration{DeviceID: "Z", Key: 9, Tags: sp("lab,roof"), At: at(3)})
	s.UpdateDevice(ctx, "b", lodestone.DeviceUpdate{Tags: sp(`["roof"]`)})
	g := &lodestone.Group{Name: "g", CreatedAt: at(0)}
	empty := &lodestone.Group{Name: "empty", CreatedAt: at(0)}
	for _, x := range []*lodestone.Group{g, empty} {
		if err := s.CreateGroup(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"c", "a"} {
		if err := s.AddGroupDevice(ctx, g.ID, id, at(4)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.MarkOffline(ctx, at(2)); err != nil { // a goes offline; b and c stay online
		t.Fatal(err)
	}
	for _, c := range []struct {
		by    string
		limit int
		want  []lodestone.DeviceCount
	}{
		{lodestone.CountByFirmware, 0, []lodestone.DeviceCount{{Value: "2.0", Devices: 2, Online: 2},
			{Value: "", Devices: 1}, {Value: "1.0", Devices: 1}}},
		{lodestone.CountByFirmware, 1, []lodestone.DeviceCount{{Value: "2.0", Devices: 2, Online: 2}}},
		{lodestone.CountByStatus, 0, []lodestone.DeviceCount{{Value: "online", Devices: 2, Online: 2},
			{Value: "offline", Devices: 1}, {Value: "provisioned", Devices: 1}}},
		{lodestone.CountByTag, 0, []lodestone.DeviceCount{{Value: "roof", Devices: 2, Online: 1},
			{Value: "lab", Devices: 1}}},
		{lodestone.CountByGroup, 0, []lodestone.DeviceCount{{Value: "g", GroupID: g.ID, Devices: 2, Online: 1},
			{Value: "empty", GroupID: empty.ID}}},
	} {
		got, err := dc.CountDevicesBy(ctx, c.by, c.limit)
		if err != nil {
			t.Fatalf("CountDevicesBy(%s): %v", c.by, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("CountDevicesBy(%s, %d) = %v, want %v", c.by, c.limit, got, c.want)
		}
	}
	gm, ok := s.(lodestone.GroupMembership)
	if !ok {
		t.Fatalf("%T does not implement lodestone.GroupMembership", s)
	}
	for id, want := range map[string]string{"a": "g", "c": "g", "b": "", "nobody": ""} {
		gs, err := gm.FindDeviceGroups(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range gs {
			names = append(names, x.Name)
			if x.Name == "g" && (x.ID != g.ID || !x.CreatedAt.Equal(at(0))) {
				t.Errorf("group of %s: %+v", id, x)
			}
		}
		if strings.Join(names, ",") != want {
			t.Errorf("groups of %s: %v, want %q", id, names, want)
		}
	}
	if _, err := dc.CountDevicesBy(ctx, "name; DROP TABLE devices", 0); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("unknown breakdown: %v", err)
	}
}
