package storetest

import (
	"context"
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
