package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/mcpserver"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// TestMCPAndFleetSummaryOverHTTP drives /mcp and /fleet/summary as a client does, so that their answers are
// checked against the API description like every other route's (TestMain).
func TestMCPAndFleetSummaryOverHTTP(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Store: db, Logger: log, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer authn.Close()
	otaSvc := ota.NewService(db, db, ota.Config{Logger: log})
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: db, Telemetry: db, Auth: authn, Logger: log,
		Credentials: db, OTA: otaSvc, Campaigns: ota.NewCampaigns(otaSvc), Crashes: db, ELFs: db, Counts: db})
	m, err := mcpserver.New(mcpserver.Options{Routes: api.APIRoutes(), Caller: mcpserver.InProcess{Handler: api.Handler()},
		Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	api.MountMCP(m.Handler())
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	do := func(method, path, body string) (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", adminPass)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}

	code, ct, body := do("GET", "/fleet/summary", "")
	var sum struct {
		Devices     *int64           `json:"devices"`
		CrashIssues map[string]int64 `json:"crash_issues"`
	}
	if err := json.Unmarshal(body, &sum); ct != "application/json" || code != http.StatusOK || err != nil || sum.Devices == nil ||
		len(sum.CrashIssues) != 3 {
		t.Fatalf("fleet summary: %d %s", code, body)
	}

	code, ct, body = do("POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{`+
		`"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if code != http.StatusOK || !strings.HasPrefix(ct, "application/json") || !strings.Contains(string(body), `"result"`) {
		t.Fatalf("initialize: %d %s %s", code, ct, body)
	}
	code, _, body = do("POST", "/mcp", `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if code != http.StatusAccepted {
		t.Fatalf("notification: %d %s", code, body)
	}
	code, _, body = do("POST", "/mcp", `{"jsonrpc":"2.0","id":"2","method":"tools/list"}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"fleet_summary"`) {
		t.Fatalf("tools/list: %d %s", code, body)
	}
	code, _, body = do("POST", "/mcp", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fleet_summary"}}`)
	if code != http.StatusOK || !strings.Contains(string(body), `devices_online`) {
		t.Fatalf("tools/call: %d %s", code, body)
	}
	// A body that is not JSON is refused by the transport, in its own words.
	if code, _, body = do("POST", "/mcp", `{not json`); code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d %s", code, body)
	}
}
