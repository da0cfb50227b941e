package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
)

func TestOTLPTokenRoutes(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	created := e.do("POST", "/admin/otlp-tokens", root, map[string]any{"name": "ci-gateway", "project": "detritus",
		"source_prefix": "detritus/gw-"}).must(t, 201)
	secret, _ := created.body["secret"].(string)
	tok, _ := created.body["token"].(map[string]any)
	if !strings.HasPrefix(secret, "ldt_") || len(secret) < 30 || tok["token_id"] != "api/ci-gateway" ||
		tok["source_prefix"] != "detritus/gw-" || !strings.HasPrefix(secret, tok["hint"].(string)) {
		t.Fatalf("created %s", created.raw)
	}
	// The default prefix is the whole project; the secret is never listed.
	e.do("POST", "/admin/otlp-tokens", root, map[string]any{"name": "all", "project": "detritus"}).must(t, 201)
	list := e.do("GET", "/admin/otlp-tokens", root, nil).must(t, 200)
	if strings.Contains(list.raw, secret) || !strings.Contains(list.raw, `"source_prefix":"detritus/"`) {
		t.Fatalf("list %s", list.raw)
	}
	// Names are unique; bad fields get 422 with the field named.
	e.do("POST", "/admin/otlp-tokens", root, map[string]any{"name": "all", "project": "detritus"}).must(t, 409)
	bad := e.do("POST", "/admin/otlp-tokens", root, map[string]any{"name": "x", "project": "p",
		"source_prefix": "elsewhere/"}).must(t, 422)
	if !strings.Contains(bad.raw, "source_prefix") {
		t.Fatalf("422 body %s", bad.raw)
	}
	e.do("DELETE", fmt.Sprintf("/admin/otlp-tokens/%v", tok["id"]), root, nil).must(t, 204)
	if l := e.do("GET", "/admin/otlp-tokens", root, nil).must(t, 200); !strings.Contains(l.raw, `"revoked_at":"`) {
		t.Fatalf("after revoke %s", l.raw)
	}
	e.do("DELETE", "/admin/otlp-tokens/999999", root, nil).must(t, 404)
}
