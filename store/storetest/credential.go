package storetest

import (
	"context"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func creds(t *testing.T, s lodestone.Store) lodestone.CredentialStore {
	t.Helper()
	c, ok := s.(lodestone.CredentialStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.CredentialStore", s)
	}
	return c
}

func testUsers(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	c := creds(t, s)
	if _, err := c.FindUser(ctx, "ann"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("FindUser on an empty store: %v, want not_found", err)
	}
	ann := &lodestone.User{Name: "ann", Role: lodestone.RoleViewer, PasswordHash: "$2a$hash1", CreatedAt: at(0),
		UpdatedAt: at(0)}
	if err := c.CreateUser(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if ann.ID == 0 {
		t.Fatal("CreateUser did not set the id")
	}
	dup := &lodestone.User{Name: "ann", Role: lodestone.RoleAdmin, PasswordHash: "x", CreatedAt: at(1),
		UpdatedAt: at(1)}
	if err := c.CreateUser(ctx, dup); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("duplicate name: %v, want conflict", err)
	}
	bob := &lodestone.User{Name: "bob", Role: lodestone.RoleAdmin, PasswordHash: "$2a$hash2", CreatedAt: at(2),
		UpdatedAt: at(2)}
	if err := c.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}

	got, err := c.FindUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ann.ID || got.Role != lodestone.RoleViewer || got.PasswordHash != "$2a$hash1" ||
		!got.CreatedAt.Equal(at(0)) || !got.UpdatedAt.Equal(at(0)) {
		t.Fatalf("FindUser = %+v, want %+v", got, ann)
	}

	got.Role, got.PasswordHash, got.UpdatedAt = lodestone.RoleProvisioner, "$2a$hash3", at(10)
	if err := c.UpdateUser(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := c.FindUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if again.Role != lodestone.RoleProvisioner || again.PasswordHash != "$2a$hash3" ||
		!again.UpdatedAt.Equal(at(10)) || !again.CreatedAt.Equal(at(0)) {
		t.Fatalf("after UpdateUser: %+v", again)
	}
	if err := c.UpdateUser(ctx, &lodestone.User{Name: "nobody", Role: lodestone.RoleViewer}); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("UpdateUser of a missing user: %v, want not_found", err)
	}

	testUserSessions(t, s, c)

	list, err := c.FindUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "ann" || list[1].Name != "bob" || list[1].Role != lodestone.RoleAdmin {
		t.Fatalf("FindUsers = %+v, want ann then bob", list)
	}

	if err := c.DeleteUser(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteUser(ctx, "ann"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("second DeleteUser: %v, want not_found", err)
	}
	if _, err := c.FindUser(ctx, "ann"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("FindUser after delete: %v, want not_found", err)
	}
}

func testTokens(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	c := creds(t, s)
	api := &lodestone.Token{Kind: lodestone.TokenAPI, Name: "ci", Role: lodestone.RoleProvisioner,
		Hint: "lst_abcd", Hash: "h-api", CreatedBy: "admin", CreatedAt: at(0)}
	dev1 := &lodestone.Token{Kind: lodestone.TokenDevice, Name: "factory", DeviceID: "sensor-1", Hint: "lsd_1111",
		Hash: "h-dev1", CreatedBy: "admin", CreatedAt: at(1)}
	dev2 := &lodestone.Token{Kind: lodestone.TokenDevice, Name: "factory", DeviceID: "sensor-2", Hint: "lsd_2222",
		Hash: "h-dev2", CreatedBy: "prov", CreatedAt: at(2)}
	for _, tok := range []*lodestone.Token{api, dev1, dev2} {
		if err := c.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if tok.ID == 0 {
			t.Fatal("CreateToken did not set the id")
		}
	}
	if err := c.CreateToken(ctx, &lodestone.Token{Kind: lodestone.TokenAPI, Name: "again", Role: lodestone.RoleViewer,
		Hint: "x", Hash: "h-api", CreatedBy: "admin", CreatedAt: at(3)}); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("duplicate hash: %v, want conflict", err)
	}

	got, err := c.FindTokenByHash(ctx, "h-api")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != api.ID || got.Kind != lodestone.TokenAPI || got.Role != lodestone.RoleProvisioner ||
		got.Name != "ci" || got.Hint != "lst_abcd" || got.DeviceID != "" || got.CreatedBy != "admin" ||
		!got.CreatedAt.Equal(at(0)) || got.LastUsedAt != nil || got.RevokedAt != nil || !got.Active() {
		t.Fatalf("FindTokenByHash = %+v", got)
	}
	got, err = c.FindTokenByHash(ctx, "h-dev1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != lodestone.TokenDevice || got.DeviceID != "sensor-1" || got.Role != lodestone.RoleNone {
		t.Fatalf("device key = %+v", got)
	}
	if _, err := c.FindTokenByHash(ctx, "nope"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown hash: %v, want not_found", err)
	}

	list := func(f lodestone.TokenFilter) []int64 {
		t.Helper()
		ts, err := c.FindTokens(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, x := range ts {
			ids = append(ids, x.ID)
		}
		return ids
	}
	eq := func(a, b []int64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	if ids := list(lodestone.TokenFilter{}); !eq(ids, []int64{api.ID, dev1.ID, dev2.ID}) {
		t.Fatalf("all tokens = %v", ids)
	}
	if ids := list(lodestone.TokenFilter{Kind: lodestone.TokenDevice}); !eq(ids, []int64{dev1.ID, dev2.ID}) {
		t.Fatalf("device keys = %v", ids)
	}
	if ids := list(lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: "sensor-2"}); !eq(ids, []int64{dev2.ID}) {
		t.Fatalf("sensor-2 keys = %v", ids)
	}

	// Last use only moves forward.
	if err := c.TouchToken(ctx, api.ID, at(20)); err != nil {
		t.Fatal(err)
	}
	if err := c.TouchToken(ctx, api.ID, at(10)); err != nil {
		t.Fatal(err)
	}
	got, _ = c.FindTokenByHash(ctx, "h-api")
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at(20)) {
		t.Fatalf("last used = %v, want %v", got.LastUsedAt, at(20))
	}

	// Revocation is scoped by the filter and keeps the first time.
	if err := c.RevokeToken(ctx, dev1.ID, lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: "sensor-2"},
		at(30)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("revoking sensor-1's key as sensor-2's: %v, want not_found", err)
	}
	if err := c.RevokeToken(ctx, api.ID, lodestone.TokenFilter{Kind: lodestone.TokenDevice}, at(30)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("revoking an API token as a device key: %v, want not_found", err)
	}
	if err := c.RevokeToken(ctx, dev1.ID, lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: "sensor-1"},
		at(30)); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeToken(ctx, dev1.ID, lodestone.TokenFilter{}, at(40)); err != nil {
		t.Fatal(err)
	}
	got, _ = c.FindTokenByHash(ctx, "h-dev1")
	if got.Active() || got.RevokedAt == nil || !got.RevokedAt.Equal(at(30)) {
		t.Fatalf("revoked key = %+v, want revoked at %v", got, at(30))
	}
	if err := c.RevokeToken(ctx, 1<<40, lodestone.TokenFilter{}, at(30)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("revoking a missing token: %v, want not_found", err)
	}
	if got, _ := c.FindTokenByHash(ctx, "h-dev2"); !got.Active() {
		t.Fatal("revoking one key revoked another")
	}
}

// testUserSessions checks that UpdateUser keeps ann's password console sessions in line with the user: a new role
// applies to them, a new password or disabling ends them, and a disabled user is stored and enabled again. Sessions
// of another user or from OIDC are left alone. Ann is a provisioner with hash3 on entry and leaves the same.
func testUserSessions(t *testing.T, s lodestone.Store, c lodestone.CredentialStore) {
	ctx := context.Background()
	ss, ok := s.(lodestone.SessionStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.SessionStore", s)
	}
	sess := func(hash, user, via string) {
		t.Helper()
		if err := ss.CreateSession(ctx, &lodestone.Session{Hash: hash, UserName: user, Role: lodestone.RoleProvisioner,
			Via: via, CreatedAt: at(0), LastSeen: at(0), ExpiresAt: at(3600)}); err != nil {
			t.Fatal(err)
		}
	}
	role := func(hash string) lodestone.Role {
		t.Helper()
		got, err := ss.FindSession(ctx, hash)
		if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
			return lodestone.RoleNone
		} else if err != nil {
			t.Fatal(err)
		}
		return got.Role
	}
	update := func(f func(u *lodestone.User)) *lodestone.User {
		t.Helper()
		u, err := c.FindUser(ctx, "ann")
		if err != nil {
			t.Fatal(err)
		}
		f(u)
		if err := c.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		got, err := c.FindUser(ctx, "ann")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	sess("ann-1", "ann", "password")
	sess("ann-oidc", "ann", "oidc")
	sess("bob-1", "bob", "password")

	update(func(u *lodestone.User) { u.Role = lodestone.RoleViewer })
	if r := role("ann-1"); r != lodestone.RoleViewer {
		t.Fatalf("ann's session after her role became viewer: %v, want viewer", r)
	}
	if r, b := role("ann-oidc"), role("bob-1"); r != lodestone.RoleProvisioner || b != lodestone.RoleProvisioner {
		t.Fatalf("a role change of ann's touched an OIDC session (%v) or bob's (%v)", r, b)
	}
	update(func(u *lodestone.User) { u.PasswordHash = "$2a$reset" })
	if r := role("ann-1"); r != lodestone.RoleNone {
		t.Fatalf("ann's session survived a new password (role %v)", r)
	}

	sess("ann-2", "ann", "password")
	got := update(func(u *lodestone.User) { v := at(20); u.DisabledAt = &v })
	if got.DisabledAt == nil || !got.DisabledAt.Equal(at(20)) || !got.Disabled() {
		t.Fatalf("after disabling: DisabledAt %v, want %v", got.DisabledAt, at(20))
	}
	if r := role("ann-2"); r != lodestone.RoleNone {
		t.Fatalf("ann's session survived disabling (role %v)", r)
	}
	if list, err := c.FindUsers(ctx); err != nil || len(list) < 1 || list[0].Name != "ann" || !list[0].Disabled() {
		t.Fatalf("FindUsers does not show ann disabled: %+v, %v", list, err)
	}
	got = update(func(u *lodestone.User) {
		u.DisabledAt = nil
		u.Role, u.PasswordHash = lodestone.RoleProvisioner, "$2a$hash3"
	})
	if got.Disabled() || got.Role != lodestone.RoleProvisioner {
		t.Fatalf("after enabling: %+v", got)
	}

	sess("ann-3", "ann", "password")
	if err := c.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if role("bob-1") != lodestone.RoleNone || role("ann-3") != lodestone.RoleProvisioner {
		t.Fatal("deleting bob did not end his session, or ended ann's")
	}
	bob := &lodestone.User{Name: "bob", Role: lodestone.RoleAdmin, PasswordHash: "$2a$hash2", CreatedAt: at(2),
		UpdatedAt: at(2), DisabledAt: ptr(at(3))}
	if err := c.CreateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if got, err := c.FindUser(ctx, "bob"); err != nil || got.DisabledAt == nil || !got.DisabledAt.Equal(at(3)) {
		t.Fatalf("a user created disabled: %+v, %v", got, err)
	}
	bob.DisabledAt = nil
	if err := c.UpdateUser(ctx, bob); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"ann-3", "ann-oidc"} {
		if err := ss.DeleteSession(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
