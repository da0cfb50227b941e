package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/mcpserver"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// memoryAuditLog is an in-memory lodestone.AuditLog for these tests only, until the stores record audit entries
// themselves; the server takes any lodestone.AuditLog, and serve passes the store's.
type memoryAuditLog struct {
	mu      sync.Mutex
	entries []lodestone.AuditEntry
	fail    bool
}

func (m *memoryAuditLog) AppendAudit(_ context.Context, e *lodestone.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	e.ID = int64(len(m.entries) + 1)
	m.entries = append(m.entries, *e)
	return nil
}

func (m *memoryAuditLog) FindAudit(context.Context, lodestone.AuditFilter) ([]*lodestone.AuditEntry, error) {
	return nil, errors.New("not kept")
}

func (m *memoryAuditLog) all() []lodestone.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.entries)
}

func (m *memoryAuditLog) setFail(v bool) {
	m.mu.Lock()
	m.fail = v
	m.mu.Unlock()
}

// clock is a settable time for confirmation expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	api   *httpapi.Server
	url   string
	audit *memoryAuditLog
	clock *clock
}

// newEnv is the real API on a real SQLite file, with users of each role and the MCP server mounted at /mcp.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", "admin-pass")
	if err != nil {
		t.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Store: db, Logger: log, BcryptCost: bcrypt.MinCost,
		Users: "vic:viewer-pass:viewer,pat:prov-pass:provisioner,pia:prov2-pass:provisioner"})
	if err != nil {
		t.Fatal(err)
	}
	w := ingest.NewWriter(db, ingest.WriterConfig{}, log)
	otaSvc := ota.NewService(db, db, ota.Config{Logger: log})
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log),
		Devices: db, Telemetry: db, Auth: authn, Logger: log, Credentials: db, OTA: otaSvc,
		Campaigns: ota.NewCampaigns(otaSvc), Crashes: db, ELFs: db, Counts: db})
	e := &env{api: api, audit: &memoryAuditLog{}, clock: &clock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}}
	m, err := mcpserver.New(mcpserver.Options{Routes: api.APIRoutes(), Caller: mcpserver.InProcess{Handler: api.Handler()},
		Audit: e.audit, Logger: log, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	api.MountMCP(m.Handler())
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		authn.Close()
		w.Close()
		db.Close()
	})
	e.url = srv.URL
	return e
}

type basicAuth struct{ user, pass string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return http.DefaultTransport.RoundTrip(r)
}

func (e *env) connect(t *testing.T, user, pass string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp",
		HTTPClient: &http.Client{Transport: basicAuth{user, pass}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, name string, args any) (map[string]any, bool) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out, res.IsError
}

func TestEveryCallIsAuditedWithoutSecrets(t *testing.T) {
	e := newEnv(t)
	vic := e.connect(t, "vic", "viewer-pass")
	if out, isErr := call(t, vic, "fleet_summary", nil); isErr || out["devices"] != 0.0 {
		t.Fatalf("fleet_summary: %v", out)
	}
	call(t, vic, "get_device", map[string]any{"id": "dev-7"}) // 404, still recorded
	if _, err := vic.CallTool(t.Context(), &mcp.CallToolParams{Name: "pause_campaign",
		Arguments: map[string]any{"id": 1}}); err == nil {
		t.Fatal("a viewer called pause_campaign")
	}
	pat := e.connect(t, "pat", "prov-pass")
	target := map[string]any{"device_id": "dev-7", "target_version": "2.0.0"}
	prep, _ := call(t, pat, "set_ota_target", target)
	token := prep["confirmation_token"].(string)
	if out, isErr := call(t, pat, "confirm", map[string]any{"confirmation_token": token, "tool": "set_ota_target",
		"arguments": target}); isErr || out["target"].(map[string]any)["target_version"] != "2.0.0" {
		t.Fatalf("confirm: %v", out)
	}
	call(t, pat, "confirm", map[string]any{"confirmation_token": token, "tool": "set_ota_target", "arguments": target})

	type row struct{ actor, action, target, outcome string }
	var got []row
	for _, en := range e.audit.all() {
		raw, _ := json.Marshal(en)
		if strings.Contains(string(raw), "cfm_") || strings.Contains(string(raw), "pass") {
			t.Errorf("a secret in the audit log: %s", raw)
		}
		if en.Via != lodestone.ViaMCP || en.ActorKind != lodestone.ActorUser || en.RequestID == "" ||
			en.ClientAddr != "127.0.0.1" || en.Time.IsZero() {
			t.Errorf("entry %+v", en)
		}
		var after struct {
			Outcome string `json:"outcome"`
		}
		json.Unmarshal(en.After, &after)
		got = append(got, row{en.Actor, en.Action, en.Target, after.Outcome})
	}
	want := []row{
		{"vic", "mcp.fleet_summary", "", "called"},
		{"vic", "mcp.get_device", "dev-7", "called"},
		{"vic", "mcp.pause_campaign", "", "refused"},
		{"pat", "mcp.set_ota_target", "dev-7", "confirmation_requested"},
		{"pat", "mcp.set_ota_target", "dev-7", "confirmed"},
		{"pat", "mcp.set_ota_target", "dev-7", "refused"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log\n got %v\nwant %v", got, want)
	}
}

func TestAuditFailureStopsTheCall(t *testing.T) {
	e := newEnv(t)
	pat := e.connect(t, "pat", "prov-pass")
	target := map[string]any{"device_id": "dev-9", "target_version": "3.0.0"}
	prep, _ := call(t, pat, "set_ota_target", target)
	e.audit.setFail(true)
	res, err := pat.CallTool(t.Context(), &mcp.CallToolParams{Name: "confirm", Arguments: map[string]any{
		"confirmation_token": prep["confirmation_token"], "tool": "set_ota_target", "arguments": target}})
	if err == nil && !res.IsError {
		t.Fatal("a write ran although it could not be recorded")
	}
	if err == nil && !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "audit") {
		t.Errorf("refusal does not say why: %v", res.Content[0])
	}
	e.audit.setFail(false)
	if out, isErr := call(t, pat, "set_ota_target", target); isErr || out["current"] != nil {
		t.Fatalf("the unrecorded write happened: current target %v", out["current"])
	}
}

func TestConfirmationExpires(t *testing.T) {
	e := newEnv(t)
	pat := e.connect(t, "pat", "prov-pass")
	target := map[string]any{"device_id": "dev-1", "target_version": "2.0.0"}
	prep, _ := call(t, pat, "set_ota_target", target)
	exp, _ := time.Parse(time.RFC3339, prep["expires_at"].(string))
	if !exp.Equal(e.clock.Now().Add(mcpserver.ConfirmTTL)) {
		t.Errorf("expires_at %v", prep["expires_at"])
	}
	e.clock.add(mcpserver.ConfirmTTL)
	out, isErr := call(t, pat, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "set_ota_target", "arguments": target})
	if !isErr || out["error_kind"] != mcpserver.KindConfirmationExpired {
		t.Fatalf("expired token: %v", out)
	}
	// Another provisioner cannot use a token issued to pat; the other tool's name is refused too.
	prep, _ = call(t, pat, "set_ota_target", target)
	pia := e.connect(t, "pia", "prov2-pass")
	if out, isErr := call(t, pia, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "set_ota_target", "arguments": target}); !isErr || out["error_kind"] != mcpserver.KindConfirmationMismatch {
		t.Fatalf("other principal: %v", out)
	}
	prep, _ = call(t, pat, "set_ota_target", target)
	if out, isErr := call(t, pat, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "pause_campaign", "arguments": map[string]any{"id": 1}}); !isErr ||
		out["error_kind"] != mcpserver.KindConfirmationMismatch {
		t.Fatalf("other tool: %v", out)
	}
}

func TestArgumentsAreCheckedWhereTheyEnter(t *testing.T) {
	e := newEnv(t)
	vic := e.connect(t, "vic", "viewer-pass")
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"list_devices", map[string]any{"colour": "red"}, `unknown argument "colour"`},
		{"list_devices", map[string]any{"limit": "ten"}, `"limit" must be an integer`},
		{"list_devices", map[string]any{"limit": -1}, `"limit" must be a non-negative integer`},
		{"get_crash_issue", nil, `argument "id" is required`},
		{"search_logs", map[string]any{"severity": "loud"}, `"severity" must be one of`},
		{"get_device", map[string]any{"id": strings.Repeat("x", 2000)}, "longer than"},
		{"device_faults", map[string]any{"id": "d", "since": "yesterday"}, "since must be a time"},
	} {
		out, isErr := call(t, vic, tc.tool, tc.args)
		if !isErr || !strings.Contains(out["error"].(string), tc.want) {
			t.Errorf("%s %v: %v, want an error containing %q", tc.tool, tc.args, out, tc.want)
		}
	}
	// A path value is escaped, never a way to another route.
	out, isErr := call(t, vic, "get_device", map[string]any{"id": "../admin/tokens"})
	if !isErr || out["status"] != 404.0 {
		t.Errorf("path value: %v", out)
	}
}

func TestToolsFollowTheRouteTable(t *testing.T) {
	e := newEnv(t)
	access := map[string]httpapi.Access{}
	for _, r := range e.api.Routes() {
		access[r.Pattern] = r.Access
	}
	for _, tl := range mcpserver.Tools {
		a, ok := access[tl.Route]
		switch {
		case !ok:
			t.Errorf("%s: route %s is not in the table", tl.Name, tl.Route)
		case tl.Write && a < httpapi.AccessProvisioner:
			t.Errorf("%s writes through %s, a %s route", tl.Name, tl.Route, a)
		case !tl.Write && (a != httpapi.AccessViewer || !strings.HasPrefix(tl.Route, "GET ")):
			t.Errorf("read tool %s calls %s (%s)", tl.Name, tl.Route, a)
		}
		if len(tl.Description) < 80 {
			t.Errorf("%s: a description too short for an agent", tl.Name)
		}
	}
	// A tool whose route is gone stops the server from starting, rather than offering a broken tool.
	routes := slices.DeleteFunc(e.api.APIRoutes(), func(r httpapi.APIRoute) bool { return r.Pattern == "GET /crashes/{id}" })
	if _, err := mcpserver.New(mcpserver.Options{Routes: routes}); err == nil ||
		!strings.Contains(err.Error(), "get_crash_issue") {
		t.Fatalf("missing route: %v", err)
	}
	// Read-only: no writes at all.
	ro, err := mcpserver.New(mcpserver.Options{Routes: e.api.APIRoutes(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ro.ToolNames(lodestone.RoleAdmin) {
		if name == mcpserver.ConfirmTool || strings.Contains(name, "pause") {
			t.Errorf("read-only server offers %s", name)
		}
	}
	// The listed schema is what the handler enforces.
	vic := e.connect(t, "vic", "viewer-pass")
	res, err := vic.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		raw, _ := json.Marshal(tl.InputSchema)
		if !bytes.Contains(raw, []byte(`"additionalProperties":false`)) || !strings.Contains(tl.Description, "Calls ") {
			t.Errorf("%s: schema %s, description %q", tl.Name, raw, tl.Description)
		}
		if tl.Annotations == nil || !tl.Annotations.ReadOnlyHint {
			t.Errorf("viewer tool %s is not marked read-only", tl.Name)
		}
	}
}

// TestToolSchemasFollowTheOpenAPIDocument checks the schemas a client sees against the API's own OpenAPI
// document: every argument of a tool is a parameter (or a body field) of its route's operation, with the same
// type and enum, and a read tool's output schema is its route's success answer.
func TestToolSchemasFollowTheOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	doc := e.api.OpenAPI()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	byName := map[string]mcpserver.Tool{}
	for _, tl := range mcpserver.Tools {
		byName[tl.Name] = tl
	}
	routes := map[string]httpapi.APIRoute{}
	for _, r := range e.api.APIRoutes() {
		routes[r.Pattern] = r
	}
	// types reads a schema's type as a set without null.
	types := func(s map[string]any) []string {
		var out []string
		switch ty := s["type"].(type) {
		case string:
			out = []string{ty}
		case []any:
			for _, v := range ty {
				if v != "null" {
					out = append(out, v.(string))
				}
			}
		case nil:
			out = []string{"string"} // an untyped parameter is a string
		}
		return out
	}
	enum := func(s map[string]any) []string {
		var out []string
		if vs, ok := s["enum"].([]any); ok {
			for _, v := range vs {
				out = append(out, v.(string))
			}
		}
		return out
	}

	admin := e.connect(t, "admin", "admin-pass")
	res, err := admin.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, tool := range res.Tools {
		tl, ok := byName[tool.Name]
		if !ok {
			continue // confirm
		}
		method, path, _ := strings.Cut(tl.Route, " ")
		var op struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name     string         `json:"name"`
				In       string         `json:"in"`
				Required bool           `json:"required"`
				Schema   map[string]any `json:"schema"`
			} `json:"parameters"`
			RequestBody *struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		}
		if err := json.Unmarshal(spec.Paths[path][strings.ToLower(method)], &op); err != nil {
			t.Fatalf("%s: %s is not in the document: %v", tool.Name, tl.Route, err)
		}
		want := map[string]map[string]any{} // argument -> the document's schema
		required := map[string]bool{}
		for _, p := range op.Parameters {
			if p.In == "path" || p.In == "query" {
				want[p.Name] = p.Schema
				required[p.Name] = p.Required && p.In == "path"
			}
		}
		if op.RequestBody != nil {
			body := op.RequestBody.Content["application/json"].Schema
			if ref, ok := body["$ref"].(string); ok {
				body = spec.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
			}
			fields, _ := body["properties"].(map[string]any)
			for name, s := range fields {
				if _, fixed := tl.Body[name]; !fixed {
					want[name] = s.(map[string]any)
				}
			}
		}
		var in struct {
			Properties map[string]map[string]any `json:"properties"`
			Required   []string                  `json:"required"`
		}
		b, _ := json.Marshal(tool.InputSchema)
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatal(err)
		}
		if len(in.Properties) != len(want) {
			t.Errorf("%s: arguments %v, the route %s takes %v", tool.Name, slices.Sorted(maps.Keys(in.Properties)),
				tl.Route, slices.Sorted(maps.Keys(want)))
		}
		for name, ws := range want {
			got, ok := in.Properties[name]
			if !ok {
				t.Errorf("%s: no argument %q, a parameter of %s", tool.Name, name, tl.Route)
				continue
			}
			if !slices.Equal(types(got), types(ws)) {
				t.Errorf("%s: argument %q is %v, the route's parameter %v", tool.Name, name, types(got), types(ws))
			}
			// A tool may name the values of a free-text parameter, never allow more than the route.
			if we, ge := enum(ws), enum(got); len(we) > 0 && !slices.Equal(ge, we) {
				t.Errorf("%s: argument %q allows %v, the route %v", tool.Name, name, ge, we)
			}
			if required[name] && !slices.Contains(in.Required, name) {
				t.Errorf("%s: path parameter %q is not required", tool.Name, name)
			}
		}
		if id := routes[tl.Route].OperationID(); id != op.OperationID || !strings.Contains(tool.Description, id) {
			t.Errorf("%s: description %q does not name operation %s", tool.Name, tool.Description, op.OperationID)
		}
		if !tl.Write {
			wantOut := routes[tl.Route].OutputSchema()
			gotOut, _ := json.Marshal(tool.OutputSchema)
			wantJSON, _ := json.Marshal(wantOut)
			if wantOut == nil || string(gotOut) != string(wantJSON) {
				t.Errorf("%s: output schema %s, want the route's %s", tool.Name, gotOut, wantJSON)
			}
		} else if tool.OutputSchema != nil {
			t.Errorf("%s: a write tool answers a confirmation first, yet has an output schema", tool.Name)
		}
		checked++
	}
	if checked != len(mcpserver.Tools) {
		t.Errorf("checked %d tools of %d", checked, len(mcpserver.Tools))
	}
}
