package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// policy is the authorization table: every route the server registers must be listed with the access it is
// meant to have, so a new route cannot ship without a decision. Keep it in sync with the README.
var policy = map[string]httpapi.Access{
	"GET /health":    httpapi.AccessPublic,
	"GET /readyz":    httpapi.AccessPublic,
	"GET /auth/mode": httpapi.AccessPublic,
	"GET /auth/me":   httpapi.AccessViewer,
	"/ui/":           httpapi.AccessSession,

	// The API description lists routes, never data; clients read it before they have credentials.
	"GET /openapi.json": httpapi.AccessPublic,

	"POST /ingest/chunks": httpapi.AccessDevice,

	"GET /devices":                 httpapi.AccessViewer,
	"GET /devices/{id}":            httpapi.AccessViewer,
	"GET /devices/{id}/faults":     httpapi.AccessViewer,
	"GET /devices/{id}/metrics":    httpapi.AccessViewer,
	"GET /devices/{id}/reboots":    httpapi.AccessViewer,
	"GET /devices/{id}/heartbeats": httpapi.AccessViewer,
	"GET /devices/{id}/traces":     httpapi.AccessViewer,
	"GET /faults":                  httpapi.AccessViewer,
	"GET /metrics":                 httpapi.AccessViewer,
	"GET /devices/{id}/series":     httpapi.AccessViewer,
	"GET /devices/{id}/timeline":   httpapi.AccessViewer,
	"GET /stability":               httpapi.AccessViewer,
	"GET /series":                  httpapi.AccessViewer,
	"GET /reboots":                 httpapi.AccessViewer,
	"GET /report/devices":          httpapi.AccessViewer,

	"POST /devices/register":                  httpapi.AccessProvisioner,
	"POST /devices/register/bulk":             httpapi.AccessProvisioner,
	"PUT /devices/{id}":                       httpapi.AccessProvisioner,
	"DELETE /devices/{id}":                    httpapi.AccessAdmin,
	"GET /groups":                             httpapi.AccessViewer,
	"POST /groups":                            httpapi.AccessProvisioner, // ferrite: admin; provisioners run campaigns on groups
	"GET /groups/{id}":                        httpapi.AccessViewer,
	"PUT /groups/{id}":                        httpapi.AccessProvisioner,
	"DELETE /groups/{id}":                     httpapi.AccessProvisioner, // members and devices stay
	"GET /groups/{id}/devices":                httpapi.AccessViewer,
	"POST /groups/{id}/devices/{device_id}":   httpapi.AccessProvisioner,
	"DELETE /groups/{id}/devices/{device_id}": httpapi.AccessProvisioner,

	"GET /devices/{id}/keys":           httpapi.AccessProvisioner,
	"POST /devices/{id}/keys":          httpapi.AccessProvisioner,
	"DELETE /devices/{id}/keys/{key}":  httpapi.AccessProvisioner,
	"GET /admin/users":                 httpapi.AccessAdmin,
	"POST /admin/users":                httpapi.AccessAdmin,
	"PUT /admin/users/{name}":          httpapi.AccessAdmin,
	"DELETE /admin/users/{name}":       httpapi.AccessAdmin,
	"GET /admin/tokens":                httpapi.AccessAdmin,
	"POST /admin/tokens":               httpapi.AccessAdmin,
	"DELETE /admin/tokens/{id}":        httpapi.AccessAdmin,
	"GET /admin/backup":                httpapi.AccessAdmin, // ferrite: any user; hardened (spec §8.7)
	"GET /admin/retention":             httpapi.AccessAdmin, // ferrite: any user
	"GET /admin/doctor":                httpapi.AccessAdmin,
	"GET /admin/audit":                 httpapi.AccessAdmin,
	"POST /admin/retention":            httpapi.AccessAdmin, // lodestone: purge now
	"GET /admin/alerts/deliveries":     httpapi.AccessAdmin,
	"GET /admin/alerts":                httpapi.AccessAdmin,
	"GET /admin/alerts/rules":          httpapi.AccessAdmin,
	"POST /admin/alerts/rules":         httpapi.AccessAdmin,
	"GET /admin/alerts/rules/{id}":     httpapi.AccessAdmin,
	"PUT /admin/alerts/rules/{id}":     httpapi.AccessAdmin,
	"DELETE /admin/alerts/rules/{id}":  httpapi.AccessAdmin,
	"POST /ingest/elf":                 httpapi.AccessProvisioner, // ferrite: key or any user; hardened
	"GET /events/stream":               httpapi.AccessViewer,      // ferrite: public; PUBLIC_EVENTS opens it
	"GET /metrics/prometheus":          httpapi.AccessViewer,      // ferrite: public; PUBLIC_METRICS opens it
	"DELETE /admin/devices/{deviceID}": httpapi.AccessAdmin,

	"GET /admin/otlp-tokens":         httpapi.AccessAdmin,
	"POST /admin/otlp-tokens":        httpapi.AccessAdmin,
	"DELETE /admin/otlp-tokens/{id}": httpapi.AccessAdmin,

	"GET /elfs":                httpapi.AccessViewer,
	"GET /elfs/{id}":           httpapi.AccessViewer,
	"DELETE /elfs/{id}":        httpapi.AccessProvisioner,
	"GET /crashes":             httpapi.AccessViewer, // ferrite: any user
	"GET /crashes/{id}":        httpapi.AccessViewer,
	"PATCH /crashes/{id}":      httpapi.AccessProvisioner,
	"POST /crashes/{id}/merge": httpapi.AccessProvisioner,

	"GET /logs":          httpapi.AccessViewer,
	"GET /logs/stream":   httpapi.AccessViewer,
	"GET /crash-uploads": httpapi.AccessViewer,

	"GET /ota/targets":                  httpapi.AccessViewer,
	"POST /ota/targets":                 httpapi.AccessProvisioner, // ferrite: admin; provisioners manage OTA
	"GET /ota/targets/{device_id}":      httpapi.AccessViewer,
	"DELETE /ota/targets/{device_id}":   httpapi.AccessProvisioner,
	"GET /ota/firmware":                 httpapi.AccessViewer,
	"POST /ota/firmware":                httpapi.AccessProvisioner,
	"GET /ota/firmware/{id}":            httpapi.AccessViewer,
	"DELETE /ota/firmware/{id}":         httpapi.AccessProvisioner,
	"POST /ota/firmware/{id}/approve":   httpapi.AccessProvisioner, // lets the server sign a FUOTA upload
	"GET /ota/firmware/{id}/download":   httpapi.AccessDevice,      // ferrite: a user login, which devices lack
	"GET /ota/firmware/{id}/manifest":   httpapi.AccessDevice,
	"GET /ota/signing-key":              httpapi.AccessPublic,
	"GET /ota/check/{device_id}":        httpapi.AccessDevice,
	"POST /ota/report":                  httpapi.AccessDevice,
	"GET /ota/campaigns":                httpapi.AccessViewer,
	"POST /ota/campaigns":               httpapi.AccessProvisioner,
	"GET /ota/campaigns/{id}":           httpapi.AccessViewer,
	"GET /ota/campaigns/{id}/devices":   httpapi.AccessViewer,
	"POST /ota/campaigns/{id}/activate": httpapi.AccessProvisioner,
	"POST /ota/campaigns/{id}/resume":   httpapi.AccessProvisioner,
	"POST /ota/campaigns/{id}/pause":    httpapi.AccessProvisioner,
	"POST /ota/campaigns/{id}/abort":    httpapi.AccessProvisioner,
	"POST /ota/campaigns/{id}/rollback": httpapi.AccessProvisioner,
	"POST /mcp":                         httpapi.AccessViewer, // each tool call is checked again against its route
	"GET /fleet/summary":                httpapi.AccessViewer,

	// hawkBit DDI: TargetToken (a device key), GatewayToken, or anonymous when enabled; none of the matrix's
	// callers sends one of those, so all are refused.
	"GET /{tenant}/controller/v1/{controllerId}":                                                 httpapi.AccessController,
	"GET /{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}":                       httpapi.AccessController,
	"POST /{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}/feedback":             httpapi.AccessController,
	"GET /{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}":                         httpapi.AccessController,
	"POST /{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}/feedback":               httpapi.AccessController,
	"PUT /{tenant}/controller/v1/{controllerId}/configData":                                      httpapi.AccessController,
	"GET /{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts":            httpapi.AccessController,
	"GET /{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts/{fileName}": httpapi.AccessController,
	"GET /devices/{id}/attributes":                                                               httpapi.AccessViewer,
	"GET /devices/{id}/ddi-actions":                                                              httpapi.AccessViewer,
}

// caller is one column of the matrix.
type caller struct {
	name string
	cred cred
}

// expect is the outcome class of a request: allowed means the guard let it through (the handler may still
// answer 4xx for the made-up path values, but never 401, 403 or 429).
func expect(access httpapi.Access, c string) int {
	switch access {
	case httpapi.AccessPublic:
		return 0
	case httpapi.AccessDevice:
		if c == "device key" {
			return 0
		}
		return http.StatusUnauthorized
	case httpapi.AccessController:
		return http.StatusUnauthorized // DDI credentials are TargetToken or GatewayToken (ddi_test.go)
	}
	switch c {
	case "no credentials", "bad credentials":
		return http.StatusUnauthorized
	case "device key":
		return http.StatusForbidden
	}
	role := map[string]lodestone.Role{"viewer": lodestone.RoleViewer, "provisioner": lodestone.RoleProvisioner,
		"admin": lodestone.RoleAdmin}[c]
	if role >= access.Role() {
		return 0
	}
	return http.StatusForbidden
}

var pathVar = regexp.MustCompile(`\{[^}]+\}`)

func TestAuthorizationMatrix(t *testing.T) {
	e := newAuthEnv(t, authOpts{users: "vic:viewer-pass:viewer,pat:prov-pass:provisioner", apiKey: "fleet-key",
		cfg: httpapi.Config{Limits: httpapi.Limits{AuthFailures: -1}}})
	root := basic("admin", adminPass)
	key := e.do("POST", "/devices/matrix-device/keys", root, nil).must(t, 201).body["secret"].(string)
	callers := []caller{
		{"no credentials", nil},
		{"viewer", basic("vic", "viewer-pass")},
		{"provisioner", basic("pat", "prov-pass")},
		{"admin", root},
		{"device key", apiKey(key)},
		{"bad credentials", basic("admin", "not-the-password")},
	}
	routes := e.api.Routes()
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	for _, rt := range routes {
		want, ok := policy[rt.Pattern]
		if !ok {
			t.Errorf("route %q (registered as %s) has no entry in the authorization table", rt.Pattern, rt.Access)
			continue
		}
		if rt.Access != want {
			t.Errorf("route %q is registered as %s, the table says %s", rt.Pattern, rt.Access, want)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = pathVar.ReplaceAllString(path, "x1")
		for _, c := range callers {
			// Each request is sent twice so that cached credentials are exercised too; the last one counts.
			var a answer
			for range 2 {
				a = e.do(method, path, c.cred, nil)
			}
			got := a.status
			switch w := expect(rt.Access, c.name); w {
			case 0:
				// 503 is a handler saying its feature is not wired in this test server: past the guard.
				if got == 401 || got == 403 || got == 429 || got >= 500 && got != 503 {
					t.Errorf("%s as %s: %d, want the route's own answer: %s", rt.Pattern, c.name, got, a.raw)
				}
			default:
				if got != w {
					t.Errorf("%s as %s: %d, want %d: %s", rt.Pattern, c.name, got, w, a.raw)
				}
				if got == 401 && a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s as %s: 401 without WWW-Authenticate", rt.Pattern, c.name)
				}
			}
		}
	}
	if n := e.api.AuthFailures(); n == 0 {
		t.Error("bad credentials were not counted")
	}
}

func TestPublicEventsAndMetricsFollowConfig(t *testing.T) {
	var c httpapi.Config
	if c.EventsAccess() != httpapi.AccessViewer || c.MetricsAccess() != httpapi.AccessViewer {
		t.Fatal("SSE and Prometheus must need credentials by default")
	}
	c.PublicEvents, c.PublicMetrics = true, true
	if c.EventsAccess() != httpapi.AccessPublic || c.MetricsAccess() != httpapi.AccessPublic {
		t.Fatal("PUBLIC_EVENTS / PUBLIC_METRICS did not open the routes")
	}
}

func TestAuthModeStaysFerriteCompatible(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	if a := e.do("GET", "/auth/mode", nil, nil).must(t, 200); a.raw != `{"mode":"basic"}`+"\n" {
		t.Fatalf("basic mode %q", a.raw)
	}
	k := newAuthEnv(t, authOpts{oidc: httpapi.NewOIDC(httpapi.OIDCConfig{
		Issuer: httpapi.KeycloakIssuer("http://127.0.0.1:1/", "fleet"), ClientID: "dash", Keycloak: true})})
	a := k.do("GET", "/auth/mode", nil, nil).must(t, 200)
	if a.body["mode"] != "keycloak" || a.body["authority"] != "http://127.0.0.1:1/realms/fleet" ||
		a.body["client_id"] != "dash" || len(a.body) != 3 {
		t.Fatalf("keycloak mode %s", a.raw)
	}
	// Basic sign-in is off in OIDC mode, as in ferrite; the challenge says Bearer.
	a = k.do("GET", "/devices", basic("admin", adminPass), nil).must(t, 401)
	if a.header.Get("WWW-Authenticate") != `Bearer realm="lodestone"` {
		t.Fatalf("challenge %q", a.header.Get("WWW-Authenticate"))
	}
	// An unreachable provider is the server's problem, not the caller's: 503, not 401.
	k.do("GET", "/devices", bearer("eyJhbGciOiJSUzI1NiJ9.e30.sig"), nil).must(t, 503)
	// API tokens work in both modes.
	tok := &lodestone.Token{Kind: lodestone.TokenAPI, Name: "ops", Role: lodestone.RoleAdmin, Hint: "lst_",
		Hash: httpapi.HashToken("lst_ops-secret"), CreatedBy: "test"}
	if err := k.db.CreateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	k.do("GET", "/admin/tokens", bearer("lst_ops-secret"), nil).must(t, 200)
}
