package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// An entry point that authenticated its caller itself (MCP) dispatches through the API's handler with the
// principal in the context: the guard takes it instead of credentials, and still holds it to the route's role.
// A device principal is never taken that way.
func TestInProcessPrincipalKeepsTheRouteRole(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	h := e.api.Handler()
	serve := func(method, path string, p *lodestone.Principal) int {
		r := httptest.NewRequest(method, path, nil)
		r = r.WithContext(lodestone.NewContextWithPrincipal(r.Context(), p))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	viewer := &lodestone.Principal{Name: "token:agent", Role: lodestone.RoleViewer}
	if c := serve("GET", "/devices", viewer); c != http.StatusOK {
		t.Errorf("viewer reads devices: %d", c)
	}
	if c := serve("GET", "/fleet/summary", viewer); c != http.StatusServiceUnavailable { // no counter wired here
		t.Errorf("viewer reads the fleet summary: %d", c)
	}
	if c := serve("POST", "/ota/campaigns/1/pause", viewer); c != http.StatusForbidden {
		t.Errorf("viewer pauses a campaign: %d", c)
	}
	if c := serve("GET", "/admin/tokens", &lodestone.Principal{Name: "pat", Role: lodestone.RoleProvisioner}); c != http.StatusForbidden {
		t.Errorf("provisioner lists tokens: %d", c)
	}
	if c := serve("GET", "/devices", &lodestone.Principal{Name: "d1", DeviceID: "d1"}); c != http.StatusUnauthorized {
		t.Errorf("a device principal in the context: %d", c)
	}
	// Without a principal, credentials are needed as always; /mcp answers 503 until an MCP server is mounted.
	if c := serve("GET", "/devices", nil); c != http.StatusUnauthorized {
		t.Errorf("no principal: %d", c)
	}
	if c := serve("POST", "/mcp", viewer); c != http.StatusServiceUnavailable {
		t.Errorf("unmounted /mcp: %d", c)
	}
}
