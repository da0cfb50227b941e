package httpapi_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

func TestParseUsersLikeFerrite(t *testing.T) {
	got := httpapi.ParseUsers(" ann:pw1:ADMIN , bob:pw2:Provisioner,cy:pw3:root,dee:pw4, bad ,:x:admin,eve:p:w:admin")
	want := []httpapi.ConfiguredUser{
		{Name: "ann", Password: "pw1", Role: lodestone.RoleAdmin},
		{Name: "bob", Password: "pw2", Role: lodestone.RoleProvisioner},
		{Name: "cy", Password: "pw3", Role: lodestone.RoleViewer},
		{Name: "dee", Password: "pw4", Role: lodestone.RoleViewer},
		{Name: "eve", Password: "p", Role: lodestone.RoleViewer}, // ferrite truncates at the second ':'
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestUsersAndRoles(t *testing.T) {
	e := newAuthEnv(t, authOpts{users: "vic:viewer-pass:viewer,pat:prov-pass:provisioner"})
	me := func(c cred) answer { return e.do("GET", "/auth/me", c, nil) }

	if a := me(basic("admin", adminPass)).must(t, 200); a.body["role"] != "admin" || a.body["name"] != "admin" {
		t.Fatalf("admin: %s", a.raw)
	}
	if a := me(basic("vic", "viewer-pass")).must(t, 200); a.body["role"] != "viewer" {
		t.Fatalf("vic: %s", a.raw)
	}
	if a := me(basic("pat", "prov-pass")).must(t, 200); a.body["role"] != "provisioner" {
		t.Fatalf("pat: %s", a.raw)
	}
	a := me(basic("vic", "wrong")).must(t, 401)
	if a.header.Get("WWW-Authenticate") != `Basic realm="lodestone"` {
		t.Fatalf("challenge %q", a.header.Get("WWW-Authenticate"))
	}
	me(basic("nobody", "viewer-pass")).must(t, 401)
	me(nil).must(t, 401)
	me(basic("admin", "viewer-pass")).must(t, 401)

	// Only admins manage users.
	e.do("GET", "/admin/users", basic("pat", "prov-pass"), nil).must(t, 403)
	e.do("POST", "/admin/users", basic("pat", "prov-pass"), map[string]any{"name": "x", "password": "12345678",
		"role": "admin"}).must(t, 403)

	// Create, sign in, change role and password, delete.
	root := basic("admin", adminPass)
	a = e.do("POST", "/admin/users", root, map[string]any{"name": "sam", "password": "sam-pass-1",
		"role": "viewer"}).must(t, 201)
	if u := a.body["user"].(map[string]any); u["name"] != "sam" || u["role"] != "viewer" || u["source"] != "api" {
		t.Fatalf("created %s", a.raw)
	}
	if strings.Contains(a.raw, "sam-pass-1") || strings.Contains(a.raw, "$2a$") {
		t.Fatalf("answer leaks the password: %s", a.raw)
	}
	stored, err := e.db.FindUser(context.Background(), "sam")
	if err != nil || !strings.HasPrefix(stored.PasswordHash, "$2a$") {
		t.Fatalf("stored %+v, %v: want a bcrypt hash", stored, err)
	}
	me(basic("sam", "sam-pass-1")).must(t, 200)
	e.do("GET", "/admin/users", basic("sam", "sam-pass-1"), nil).must(t, 403)

	e.do("POST", "/admin/users", root, map[string]any{"name": "sam", "password": "other-pass",
		"role": "viewer"}).must(t, 409)
	e.do("POST", "/admin/users", root, map[string]any{"name": "vic", "password": "other-pass",
		"role": "viewer"}).must(t, 409)
	e.do("PUT", "/admin/users/vic", root, map[string]any{"role": "admin"}).must(t, 409)
	e.do("DELETE", "/admin/users/admin", root, nil).must(t, 409)

	e.do("PUT", "/admin/users/sam", root, map[string]any{"role": "admin", "password": "sam-pass-2"}).must(t, 200)
	me(basic("sam", "sam-pass-1")).must(t, 401) // the old password stops working at once
	if a := me(basic("sam", "sam-pass-2")).must(t, 200); a.body["role"] != "admin" {
		t.Fatalf("after update: %s", a.raw)
	}
	e.do("GET", "/admin/users", basic("sam", "sam-pass-2"), nil).must(t, 200)
	e.do("PUT", "/admin/users/ghost", root, map[string]any{"role": "admin"}).must(t, 404)

	a = e.do("GET", "/admin/users", root, nil).must(t, 200)
	var names []string
	for _, u := range a.body["users"].([]any) {
		m := u.(map[string]any)
		names = append(names, m["name"].(string)+"/"+m["role"].(string)+"/"+m["source"].(string))
	}
	if strings.Join(names, ",") != "admin/admin/env,vic/viewer/env,pat/provisioner/env,sam/admin/api" {
		t.Fatalf("users %v", names)
	}

	e.do("DELETE", "/admin/users/sam", root, nil).must(t, 204)
	me(basic("sam", "sam-pass-2")).must(t, 401)
	e.do("DELETE", "/admin/users/sam", root, nil).must(t, 404)
}

// TestDisableUser: a disabled user keeps their account but is refused at once, with a reason only for the right
// password; enabling them again lets them in; nobody disables or deletes their own account.
func TestDisableUser(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	me := func(c cred) answer { return e.do("GET", "/auth/me", c, nil) }
	e.do("POST", "/admin/users", root, map[string]any{"name": "dora", "password": "dora-pass-1",
		"role": "admin"}).must(t, 201)
	me(basic("dora", "dora-pass-1")).must(t, 200) // remembered as verified
	a := e.do("PUT", "/admin/users/dora", root, map[string]any{"disabled": true}).must(t, 200)
	u := a.body["user"].(map[string]any)
	if u["disabled"] != true || u["disabled_at"] == nil || u["role"] != "admin" {
		t.Fatalf("after disabling: %s", a.raw)
	}
	if r := me(basic("dora", "dora-pass-1")).must(t, 401); !strings.Contains(r.raw, "disabled") {
		t.Fatalf("a disabled user with the right password: %s", r.raw)
	}
	if r := me(basic("dora", "wrong-pass-1")).must(t, 401); strings.Contains(r.raw, "disabled") {
		t.Fatalf("a wrong password learns the account is disabled: %s", r.raw)
	}
	e.do("PUT", "/admin/users/dora", root, map[string]any{"disabled": "yes"}).must(t, 422)
	a = e.do("PUT", "/admin/users/dora", root, map[string]any{"disabled": false}).must(t, 200)
	if u := a.body["user"].(map[string]any); u["disabled"] != false || u["disabled_at"] != nil {
		t.Fatalf("after enabling: %s", a.raw)
	}
	me(basic("dora", "dora-pass-1")).must(t, 200)
	// Dora, an admin, may not lock herself out; another admin may.
	e.do("PUT", "/admin/users/dora", basic("dora", "dora-pass-1"), map[string]any{"disabled": true}).must(t, 409)
	e.do("DELETE", "/admin/users/dora", basic("dora", "dora-pass-1"), nil).must(t, 409)
	e.do("PUT", "/admin/users/dora", basic("dora", "dora-pass-1"), map[string]any{"disabled": false}).must(t, 200)
	a = e.do("GET", "/admin/users", root, nil).must(t, 200)
	if !strings.Contains(a.raw, `"disabled":false`) {
		t.Fatalf("the user list lacks the disabled field: %s", a.raw)
	}
}

func TestUserPayloadErrors(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	a := e.do("POST", "/admin/users", root, map[string]any{"name": "bad name!", "password": "short",
		"role": "owner"}).must(t, 422)
	f := a.body["fields"].(map[string]any)
	if f["name"] == nil || f["password"] == nil || f["role"] == nil || a.body["code"] != "invalid" {
		t.Fatalf("fields %s", a.raw)
	}
	a = e.do("POST", "/admin/users", root, map[string]any{"name": "ok", "password": 12345678,
		"role": "viewer"}).must(t, 422)
	if f := a.body["fields"].(map[string]any); f["password"] == nil {
		t.Fatalf("type error %s", a.raw)
	}
	e.do("POST", "/admin/users", root, map[string]any{}).must(t, 422)
	e.do("POST", "/admin/users", root, `{"name":`, "Content-Type", "application/json").must(t, 400)
	e.do("POST", "/admin/users", root, `{"name":"a"} {}`, "Content-Type", "application/json").must(t, 400)
	e.do("POST", "/admin/users", root, `name=a`, "Content-Type", "application/x-www-form-urlencoded").must(t, 415)
	e.do("POST", "/admin/users", root, `[1,2]`, "Content-Type", "application/json").must(t, 400)
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	e.do("POST", "/admin/users", root, big, "Content-Type", "application/json").must(t, 413)
}

func TestAPITokens(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	a := e.do("POST", "/admin/tokens", root, map[string]any{"name": "ci", "role": "provisioner"}).must(t, 201)
	secret, _ := a.body["secret"].(string)
	tok := a.body["token"].(map[string]any)
	if !strings.HasPrefix(secret, "lst_") || len(secret) < 36 || !strings.HasPrefix(secret, tok["hint"].(string)) ||
		tok["role"] != "provisioner" || tok["created_by"] != "admin" || tok["last_used_at"] != nil {
		t.Fatalf("created %s", a.raw)
	}
	// Stored only as a hash.
	got, err := e.db.FindTokenByHash(context.Background(), httpapi.HashToken(secret))
	if err != nil || got.Name != "ci" {
		t.Fatalf("stored token %+v, %v", got, err)
	}
	list := e.do("GET", "/admin/tokens", root, nil).must(t, 200)
	if strings.Contains(list.raw, secret) || strings.Contains(list.raw, got.Hash) {
		t.Fatalf("listing leaks the secret: %s", list.raw)
	}

	if a := e.do("GET", "/auth/me", bearer(secret), nil).must(t, 200); a.body["role"] != "provisioner" ||
		a.body["name"] != "token:ci" {
		t.Fatalf("me %s", a.raw)
	}
	e.do("GET", "/devices", bearer(secret), nil).must(t, 200)
	e.do("GET", "/admin/tokens", bearer(secret), nil).must(t, 403)
	e.do("GET", "/devices", bearer(secret+"x"), nil).must(t, 401)
	e.do("GET", "/devices", bearer("lst_nothing"), nil).must(t, 401)

	// Last use is written in the background, once.
	e.authn.Close()
	list = e.do("GET", "/admin/tokens", root, nil).must(t, 200)
	toks := list.body["tokens"].([]any)
	if len(toks) != 1 || toks[0].(map[string]any)["last_used_at"] == nil {
		t.Fatalf("after use: %s", list.raw)
	}

	e.do("POST", "/admin/tokens", root, map[string]any{"name": "x"}).must(t, 422)
	e.do("POST", "/admin/tokens", root, map[string]any{"name": "x", "role": "root"}).must(t, 422)

	id := int(tok["id"].(float64))
	e.do("DELETE", "/admin/tokens/"+itoa(id), root, nil).must(t, 204)
	a = e.do("GET", "/devices", bearer(secret), nil).must(t, 401)
	if !strings.Contains(a.raw, "revoked") {
		t.Fatalf("revoked token answer %s", a.raw)
	}
	e.do("DELETE", "/admin/tokens/999", root, nil).must(t, 404)
	e.do("DELETE", "/admin/tokens/abc", root, nil).must(t, 400)
	list = e.do("GET", "/admin/tokens", root, nil).must(t, 200)
	if list.body["tokens"].([]any)[0].(map[string]any)["revoked_at"] == nil {
		t.Fatalf("revoked token listed as %s", list.raw)
	}
}

func TestDeviceKeys(t *testing.T) {
	e := newAuthEnv(t, authOpts{apiKey: "fleet-key"})
	prov := basic("admin", adminPass)
	a := e.do("POST", "/devices/test-device/keys", prov, map[string]any{"name": "factory"}).must(t, 201)
	key := a.body["secret"].(string)
	if !strings.HasPrefix(key, "lsd_") || a.body["key"].(map[string]any)["device_id"] != "test-device" {
		t.Fatalf("created %s", a.raw)
	}
	other := e.do("POST", "/devices/other/keys", prov, nil).must(t, 201).body["secret"].(string)

	post := func(c cred, body []byte, hdr ...string) answer {
		return e.do("POST", "/ingest/chunks", c, body, hdr...)
	}
	post(apiKey(key), v("V1", "V4")).must(t, 200)
	post(bearer(key), v("V1", "V4")).must(t, 200)
	post(apiKey("fleet-key"), v("V1")).must(t, 200)
	post(nil, v("V1")).must(t, 401)
	post(apiKey("lsd_forged"), v("V1")).must(t, 401)
	// Headerless chunks belong to the key's device; a header naming another device is refused.
	post(apiKey(key), v("V4")).must(t, 200)
	post(apiKey(other), v("V4"), "X-Device-Id", "test-device").must(t, 403)
	// A device key reads nothing.
	e.do("GET", "/devices", apiKey(key), nil).must(t, 403)
	e.do("GET", "/devices", bearer(key), nil).must(t, 403)

	list := e.do("GET", "/devices/test-device/keys", prov, nil).must(t, 200)
	keys := list.body["keys"].([]any)
	if len(keys) != 1 || strings.Contains(list.raw, key) {
		t.Fatalf("keys %s", list.raw)
	}
	id := int(keys[0].(map[string]any)["id"].(float64))
	e.do("DELETE", "/devices/other/keys/"+itoa(id), prov, nil).must(t, 404) // not other's key
	e.do("DELETE", "/devices/test-device/keys/"+itoa(id), prov, nil).must(t, 204)
	post(apiKey(key), v("V1")).must(t, 401)
	post(apiKey(other), v("V4")).must(t, 200)
}

func itoa(n int) string { return strconv.Itoa(n) }
