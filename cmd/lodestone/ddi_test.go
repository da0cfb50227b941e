package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The DDI settings reach the served API: the tenant, the poll interval, the gateway token, anonymous access.
func TestServeDDISettings(t *testing.T) {
	bin := buildBinary(t)
	p := start(t, bin, t.TempDir(), "BASIC_AUTH_PASS=ddi-admin-pass-1", "DDI_TENANT=fleet",
		"DDI_POLL_SECONDS=7", "DDI_GATEWAY_TOKEN=gateway-token-0123456789")
	get := func(path, authz string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("/FLEET/controller/v1/dev-1", "GatewayToken gateway-token-0123456789"); st != 200 ||
		!strings.Contains(body, `"sleep":"00:00:07"`) {
		t.Fatalf("poll: %d %s", st, body)
	}
	// The poll made the controller a device.
	if st := getJSON(t, "http://"+p.addr+"/devices/dev-1", "ddi-admin-pass-1", nil); st != 200 {
		t.Fatalf("device after the poll: %d", st)
	}
	if st, _ := get("/DEFAULT/controller/v1/dev-1", "GatewayToken gateway-token-0123456789"); st != 404 {
		t.Fatalf("another tenant: %d", st)
	}
	if st, _ := get("/fleet/controller/v1/dev-1", ""); st != 401 {
		t.Fatalf("anonymous while DDI_ANONYMOUS is off: %d", st)
	}
	p = start(t, bin, t.TempDir(), "BASIC_AUTH_PASS=ddi-admin-pass-1", "DDI_ANONYMOUS=true")
	if st, body := get("/DEFAULT/controller/v1/dev-1", ""); st != 200 || !strings.Contains(body, `"00:05:00"`) {
		t.Fatalf("anonymous poll: %d %s", st, body)
	}
}
