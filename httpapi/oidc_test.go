package httpapi_test

import (
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/internal/glewlwyd"
)

// TestOIDCWithGlewlwyd signs users in through a real OpenID provider: tokens it issues are verified against its
// JWKS, roles come from the configured claim, and tokens for another client or with a broken signature fail.
func TestOIDCWithGlewlwyd(t *testing.T) {
	g := glewlwyd.Start(t)
	g.SetupOIDC("lodestone", "lodestone-secret", nil, map[string]string{"alice": "lodestone-provisioner",
		"bob": "", "carol": "admin"})
	e := newAuthEnv(t, authOpts{oidc: httpapi.NewOIDC(httpapi.OIDCConfig{Issuer: g.Issuer(),
		ClientID: "lodestone", RoleClaim: "roles"})})

	a := e.do("GET", "/auth/mode", nil, nil).must(t, 200)
	if a.body["mode"] != "oidc" || a.body["authority"] != g.Issuer() || a.body["client_id"] != "lodestone" {
		t.Fatalf("auth mode %s", a.raw)
	}

	access, id := g.Login("lodestone", "lodestone-secret", "alice")
	for name, tok := range map[string]string{"access token": access, "ID token": id} {
		a := e.do("GET", "/auth/me", bearer(tok), nil).must(t, 200)
		if a.body["name"] != "alice" || a.body["role"] != "provisioner" || a.body["mode"] != "oidc" {
			t.Fatalf("alice's %s: %s", name, a.raw)
		}
	}
	e.do("GET", "/devices", bearer(access), nil).must(t, 200)
	e.do("GET", "/admin/users", bearer(access), nil).must(t, 403)

	bobAccess, _ := g.Login("lodestone", "lodestone-secret", "bob")
	if a := e.do("GET", "/auth/me", bearer(bobAccess), nil).must(t, 200); a.body["role"] != "viewer" {
		t.Fatalf("bob (no role claim) %s", a.raw)
	}
	e.do("POST", "/devices/x/keys", bearer(bobAccess), nil).must(t, 403)

	carol, _ := g.Login("lodestone", "lodestone-secret", "carol")
	e.do("GET", "/admin/users", bearer(carol), nil).must(t, 200)

	// A flipped signature byte, a token cut short, and Basic credentials all fail.
	parts := strings.Split(access, ".")
	sig := []byte(parts[2])
	sig[10] ^= 1
	if sig[10] == '.' {
		sig[10] = 'A'
	}
	e.do("GET", "/devices", bearer(parts[0]+"."+parts[1]+"."+string(sig)), nil).must(t, 401)
	e.do("GET", "/devices", bearer(parts[0]+"."+parts[1]), nil).must(t, 401)
	e.do("GET", "/devices", basic("alice", "alice-password"), nil).must(t, 401)

	// The same provider's tokens for a different client are refused.
	other := newAuthEnv(t, authOpts{oidc: httpapi.NewOIDC(httpapi.OIDCConfig{Issuer: g.Issuer(),
		ClientID: "another-app", RoleClaim: "roles"})})
	other.do("GET", "/devices", bearer(access), nil).must(t, 401)
}

func TestRoleFromClaims(t *testing.T) {
	kc := map[string]any{"realm_access": map[string]any{"roles": []any{"offline_access", "ferrite-provisioner"}}}
	for _, c := range []struct {
		claims map[string]any
		path   string
		want   string
	}{
		{kc, "realm_access.roles", "provisioner"},
		{kc, "roles", "viewer"},
		{map[string]any{"roles": "viewer,lodestone-admin"}, "roles", "admin"},
		{map[string]any{"groups": []any{"Admin"}}, "groups", "admin"},
		{map[string]any{"roles": 42}, "roles", "viewer"},
	} {
		if got := httpapi.RoleFromClaims(c.claims, c.path).String(); got != c.want {
			t.Errorf("%v at %s: %s, want %s", c.claims, c.path, got, c.want)
		}
	}
}
