package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// routesJSONKeys is the frozen schema of routes --json: each route has exactly these keys, all strings. New
// keys are added here; a renamed or removed one fails.
var routesJSONKeys = []string{"access", "description", "method", "operation_id", "path", "pattern", "summary", "tag"}

func routesJSON(t *testing.T, env map[string]string) []map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"routes", "--json"}, &out, &errb, mapEnv(env)); code != 0 {
		t.Fatalf("routes --json: exit %d: %s", code, errb.String())
	}
	var doc struct {
		Routes []map[string]any `json:"routes"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("routes --json is not JSON: %v", err)
	}
	return doc.Routes
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestRoutesJSONSchema(t *testing.T) {
	routes := routesJSON(t, nil)
	table := httpapi.New(httpapi.Config{}, httpapi.Deps{}).Routes()
	if len(routes) != len(table) {
		t.Fatalf("routes --json lists %d routes, the server registers %d", len(routes), len(table))
	}
	for i, r := range routes {
		keys := slices.Sorted(maps.Keys(r))
		if !slices.Equal(keys, routesJSONKeys) {
			t.Fatalf("route %d keys %v, want %v (the schema only grows: add new keys to routesJSONKeys)", i, keys, routesJSONKeys)
		}
		for k, v := range r {
			if _, ok := v.(string); !ok {
				t.Errorf("route %d: %s is %T, want a string", i, k, v)
			}
		}
		if r["pattern"] != table[i].Pattern || r["access"] != table[i].Access.String() {
			t.Errorf("route %d: %v %v, want %s %s", i, r["pattern"], r["access"], table[i].Pattern, table[i].Access)
		}
		if r["pattern"] != r["method"].(string)+" "+r["path"].(string) || r["summary"] == "" || r["operation_id"] == "" {
			t.Errorf("route %d: incomplete: %v", i, r)
		}
	}
}

// TestRoutesReadsConfiguration: PUBLIC_EVENTS opens /events/stream, and the listing says so.
func TestRoutesReadsConfiguration(t *testing.T) {
	access := func(env map[string]string) any {
		for _, r := range routesJSON(t, env) {
			if r["pattern"] == "GET /events/stream" {
				return r["access"]
			}
		}
		return nil
	}
	if got := access(nil); got != "viewer" {
		t.Errorf("default: /events/stream access %v, want viewer", got)
	}
	if got := access(map[string]string{"PUBLIC_EVENTS": "true"}); got != "public" {
		t.Errorf("PUBLIC_EVENTS=true: /events/stream access %v, want public", got)
	}
}

func TestRoutesTable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"routes"}, &out, &errb, mapEnv(nil)); code != 0 {
		t.Fatalf("routes: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"METHOD", "PATH", "ACCESS", "SUMMARY"}) {
		t.Fatalf("header %q", lines[0])
	}
	if len(lines)-1 != len(httpapi.New(httpapi.Config{}, httpapi.Deps{}).Routes()) {
		t.Errorf("%d rows", len(lines)-1)
	}
	found := false
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "DELETE" && f[1] == "/admin/users/{name}" && f[2] == "admin" {
			found = strings.Join(f[3:], " ") == "Delete a user"
		}
	}
	if !found {
		t.Errorf("no row for DELETE /admin/users/{name} admin Delete a user:\n%s", out.String())
	}
	var help strings.Builder
	if code := run(t.Context(), []string{"help"}, &help, io.Discard, nil); code != 0 ||
		!strings.Contains(help.String(), "routes ") {
		t.Errorf("help does not list the routes command:\n%s", help.String())
	}
}
