package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// bareServer has every route registered and no services: enough for its route table and document.
func bareServer(cfg Config) *Server { return New(cfg, Deps{}) }

// TestOpenAPICoversRoutes fails when a registered route has no metadata, or metadata names a route that is not
// registered (a renamed pattern), or an entry lacks a summary or a success answer.
func TestOpenAPICoversRoutes(t *testing.T) {
	s := bareServer(Config{})
	registered := map[string]bool{}
	for _, r := range s.Routes() {
		registered[r.Pattern] = true
		d, ok := routeDocs[r.Pattern]
		if !ok {
			t.Errorf("route %q has no entry in routeDocs (httpapi/openapi_routes.go): add one (see the comment there)", r.Pattern)
			continue
		}
		if d.Summary == "" || len(d.Responses) == 0 {
			t.Errorf("routeDocs[%q] needs a Summary and at least one Response", r.Pattern)
		}
	}
	for _, p := range RouteDocPatterns() {
		if !registered[p] {
			t.Errorf("routeDocs has %q, which no s.handle registers: was the route renamed or removed?", p)
		}
	}
}

// TestOpenAPIDocument loads the served document with kin-openapi, validates it (schemas, examples, references)
// and checks that each operation carries its route's access and security.
func TestOpenAPIDocument(t *testing.T) {
	s := bareServer(Config{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json") // public: no credentials
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(raw)
	doc, err := loadDocument(data)
	if err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	for _, r := range s.Routes() {
		method, path, _ := strings.Cut(r.Pattern, " ")
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s: missing from the document", r.Pattern)
			continue
		}
		op := item.GetOperation(method)
		if got := op.Extensions["x-lodestone-access"]; got != r.Access.String() {
			t.Errorf("%s: x-lodestone-access %v, want %s", r.Pattern, got, r.Access)
		}
		if op.Security == nil {
			t.Errorf("%s: no security requirement", r.Pattern)
			continue
		}
		var schemes []string
		for _, req := range *op.Security {
			for name := range req {
				schemes = append(schemes, name)
			}
		}
		slices.Sort(schemes)
		want := map[Access][]string{AccessPublic: nil, AccessDevice: {schemeBearer, schemeDeviceKey}}[r.Access]
		if r.Access >= AccessViewer {
			want = []string{schemeBasic, schemeBearer}
		}
		if r.Access == AccessController { // hawkBit's TargetToken and GatewayToken, not a user's credentials
			want = []string{schemeDDI}
		}
		if !slices.Equal(schemes, want) {
			t.Errorf("%s (%s): security %v, want %v", r.Pattern, r.Access, schemes, want)
		}
		if op.Responses.Default() == nil {
			t.Errorf("%s: no default (error) response", r.Pattern)
		}
	}
	// The configuration shows in the access of the routes it opens.
	open := bareServer(Config{PublicEvents: true}).OpenAPI()
	op := open["paths"].(map[string]any)["/events/stream"].(map[string]any)["get"].(map[string]any)
	if op["x-lodestone-access"] != "public" {
		t.Errorf("PUBLIC_EVENTS: /events/stream access %v, want public", op["x-lodestone-access"])
	}
}

// TestSchemaOf pins the generator's rules: json names, omitempty as optional, pointers as nullable, embedded
// fields flattened.
func TestSchemaOf(t *testing.T) {
	type inner struct {
		A string `json:"a"`
	}
	type v struct {
		inner
		N  *int              `json:"n"`
		O  string            `json:"o,omitempty"`
		S  []string          `json:"s"`
		M  map[string]int64  `json:"m"`
		R  json.RawMessage   `json:"r"`
		X  string            `json:"-"`
		P  *inner            `json:"p,omitempty"`
		Ts []map[string]bool `json:"ts"`
	}
	got, _ := json.Marshal(SchemaOf(v{}))
	want := `{"properties":{"a":{"type":"string"},"m":{"additionalProperties":{"type":"integer"},"type":"object"},` +
		`"n":{"type":["integer","null"]},"o":{"type":"string"},"p":{"properties":{"a":{"type":"string"}},` +
		`"required":["a"],"type":"object"},"r":{},"s":{"items":{"type":"string"},"type":"array"},` +
		`"ts":{"items":{"additionalProperties":{"type":"boolean"},"type":"object"},"type":"array"}},` +
		`"required":["a","n","s","m","r","ts"],"type":"object"}`
	if string(got) != want {
		t.Errorf("SchemaOf:\n got %s\nwant %s", got, want)
	}
}

// The contract: every field of every described response, with its type and whether it is always present.
// Responses may only grow: a snapshot line that disappears (a field removed or renamed, a type changed, an
// always-present field made optional, a route or status dropped) fails TestOpenAPIContract.
const contractFile = "testdata/openapi_contract.txt"

// TestOpenAPIContract compares the document's response fields with the committed snapshot. Regenerate it after
// an intended change with LODESTONE_UPDATE_CONTRACT=1 go test ./httpapi/ -run TestOpenAPIContract.
func TestOpenAPIContract(t *testing.T) {
	got := contractLines(bareServer(Config{}).OpenAPI())
	path := filepath.FromSlash(contractFile)
	if os.Getenv("LODESTONE_UPDATE_CONTRACT") != "" {
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d lines)", path, len(got))
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: create it with LODESTONE_UPDATE_CONTRACT=1 go test ./httpapi/ -run TestOpenAPIContract", err)
	}
	have := map[string]bool{}
	byField := map[string]string{} // "op field" -> its line, to tell a type change from a removal
	for _, l := range got {
		have[l] = true
		byField[fieldKey(l)] = l
	}
	var added int
	want := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		want[l] = true
		if have[l] {
			continue
		}
		if now, ok := byField[fieldKey(l)]; ok {
			t.Errorf("response field changed: was %q, now %q; responses may only grow (add a field instead)", l, now)
		} else {
			t.Errorf("response field removed or renamed: %q; responses may only grow", l)
		}
	}
	for _, l := range got {
		if !want[l] {
			added++
		}
	}
	if t.Failed() {
		t.Logf("if the break is intended, regenerate %s with LODESTONE_UPDATE_CONTRACT=1", contractFile)
	} else if added > 0 {
		t.Logf("%d new response fields are not in %s yet; regenerate it with LODESTONE_UPDATE_CONTRACT=1", added, contractFile)
	}
}

// TestContractDetectsBreaks proves the comparison fails on a removed field, a type change and a field made
// optional, and passes a new field.
func TestContractDetectsBreaks(t *testing.T) {
	doc := func(props map[string]any, required ...string) map[string]any {
		return map[string]any{"paths": map[string]any{"/x": map[string]any{"get": map[string]any{
			"responses": map[string]any{"200": map[string]any{"content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"type": "object", "properties": props, "required": required}}}}}}}},
			"components": map[string]any{}}
	}
	base := contractLines(doc(map[string]any{"a": map[string]any{"type": "string"}, "b": map[string]any{"type": "integer"}}, "a", "b"))
	for name, c := range map[string]struct {
		doc    map[string]any
		break_ bool
	}{
		"grown":    {doc(map[string]any{"a": map[string]any{"type": "string"}, "b": map[string]any{"type": "integer"}, "c": map[string]any{"type": "string"}}, "a", "b"), false},
		"removed":  {doc(map[string]any{"a": map[string]any{"type": "string"}}, "a"), true},
		"retyped":  {doc(map[string]any{"a": map[string]any{"type": "string"}, "b": map[string]any{"type": "string"}}, "a", "b"), true},
		"optional": {doc(map[string]any{"a": map[string]any{"type": "string"}, "b": map[string]any{"type": "integer"}}, "a"), true},
		"nullable": {doc(map[string]any{"a": map[string]any{"type": []any{"string", "null"}}, "b": map[string]any{"type": "integer"}}, "a", "b"), true},
	} {
		now := map[string]bool{}
		for _, l := range contractLines(c.doc) {
			now[l] = true
		}
		broke := false
		for _, l := range base {
			broke = broke || !now[l]
		}
		if broke != c.break_ {
			t.Errorf("%s: break detected %v, want %v (base %q)", name, broke, c.break_, base)
		}
	}
}

func fieldKey(line string) string {
	i := strings.LastIndexByte(line, ' ')
	return strings.TrimSuffix(line[:i], "?")
}

// contractLines flattens each response schema of the document into "METHOD path status media field[?] type"
// lines, sorted; "?" marks a field that may be absent. Arrays add [] to the field, maps {}.
func contractLines(doc map[string]any) []string {
	// Round-trip through JSON so Go values (examples, typed slices) read as plain JSON.
	b, _ := json.Marshal(doc)
	var d map[string]any
	json.Unmarshal(b, &d)
	comps, _ := d["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	responses, _ := comps["responses"].(map[string]any)
	var out []string
	paths, _ := d["paths"].(map[string]any)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			resps, _ := op.(map[string]any)["responses"].(map[string]any)
			for status, r := range resps {
				rm := r.(map[string]any)
				prefix := fmt.Sprintf("%s %s %s", strings.ToUpper(method), path, status)
				if _, ok := rm["$ref"]; ok {
					continue // a shared error shape, flattened once below
				}
				content, _ := rm["content"].(map[string]any)
				if len(content) == 0 {
					out = append(out, prefix+" (no body)")
				}
				for media, m := range content {
					schema, _ := m.(map[string]any)["schema"].(map[string]any)
					flatten(&out, prefix+" "+media, "", schema, schemas, map[string]bool{})
				}
			}
		}
	}
	for name, r := range responses {
		content, _ := r.(map[string]any)["content"].(map[string]any)
		for media, m := range content {
			schema, _ := m.(map[string]any)["schema"].(map[string]any)
			flatten(&out, "responses/"+name+" "+media, "", schema, schemas, map[string]bool{})
		}
	}
	sort.Strings(out)
	return out
}

func flatten(out *[]string, prefix, field string, s map[string]any, defs map[string]any, seen map[string]bool) {
	s, ty, seen := resolve(s, defs, seen)
	name := field
	if name == "" {
		name = "."
	}
	*out = append(*out, prefix+" "+name+" "+ty)
	props, _ := s["properties"].(map[string]any)
	req := map[string]bool{}
	if rs, ok := s["required"].([]any); ok {
		for _, r := range rs {
			req[r.(string)] = true
		}
	}
	for k, p := range props {
		f := strings.TrimPrefix(field+"."+k, ".")
		if !req[k] {
			f += "?"
		}
		flatten(out, prefix, f, p.(map[string]any), defs, seen)
	}
	if items, ok := s["items"].(map[string]any); ok {
		flatten(out, prefix, field+"[]", items, defs, seen)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		flatten(out, prefix, field+"{}", ap, defs, seen)
	}
}

// resolve follows references and nullable wrappers, returning the schema to walk and its type text.
func resolve(s map[string]any, defs map[string]any, seen map[string]bool) (map[string]any, string, map[string]bool) {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if seen[name] {
			return map[string]any{}, "ref:" + name, seen
		}
		d, _ := defs[name].(map[string]any)
		next := maps.Clone(seen)
		next[name] = true
		return resolve(d, defs, next)
	}
	for _, k := range []string{"anyOf", "allOf"} {
		if list, ok := s[k].([]any); ok {
			var types []string
			var walk map[string]any
			walkSeen := seen
			for _, e := range list {
				sub, ty, sn := resolve(e.(map[string]any), defs, seen)
				types = append(types, ty)
				if ty != "null" {
					walk, walkSeen = sub, sn
				}
			}
			if walk == nil {
				walk = map[string]any{}
			}
			return walk, strings.Join(types, "|"), walkSeen
		}
	}
	switch ty := s["type"].(type) {
	case string:
		return s, ty, seen
	case []any:
		var parts []string
		for _, p := range ty {
			parts = append(parts, p.(string))
		}
		return s, strings.Join(parts, "|"), seen
	}
	return s, "any", seen
}

// TestResponseCheckerCatchesMismatch proves the suite-wide check fails on a response that strays from the
// description: a missing field, an undescribed field, a wrong type, an undescribed status or content type.
func TestResponseCheckerCatchesMismatch(t *testing.T) {
	s := bareServer(Config{})
	c := &responseChecker{docs: map[string]*openapi3.T{}}
	req := httptest.NewRequest(http.MethodGet, "/groups/1", nil)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	good := `{"group":{"id":1,"name":"a","description":null,"device_count":0,"created_at":"2026-01-01T00:00:00Z"}}`
	for name, tc := range map[string]struct {
		status int
		header http.Header
		body   string
		ok     bool
	}{
		"good":          {200, jsonHeader, good, true},
		"error shape":   {404, jsonHeader, `{"error":"group not found","code":"not_found"}`, true},
		"missing field": {200, jsonHeader, `{"group":{"id":1,"name":"a","description":null,"created_at":"x"}}`, false},
		"extra field":   {200, jsonHeader, strings.Replace(good, `"id":1`, `"id":1,"color":"red"`, 1), false},
		"wrong type":    {200, jsonHeader, strings.Replace(good, `"id":1`, `"id":"1"`, 1), false},
		"bad error":     {404, jsonHeader, `{"message":"nope"}`, false},
		"status":        {201, jsonHeader, good, false},
		"content type":  {200, http.Header{"Content-Type": {"text/html"}}, good, false},
	} {
		msg := c.check(recorded{srv: s, pattern: "GET /groups/{id}", method: "GET", req: req, status: tc.status,
			header: tc.header, body: []byte(tc.body)})
		if (msg == "") != tc.ok {
			t.Errorf("%s: check said %q, want ok=%v", name, msg, tc.ok)
		}
	}
	if msg := c.check(recorded{srv: s, pattern: "GET /nowhere", method: "GET", req: req, status: 200,
		header: jsonHeader, body: []byte(`{}`)}); !strings.Contains(msg, "without metadata") {
		t.Errorf("a route without metadata: %q", msg)
	}
}

// TestAPIRoutesToolSchemas pins what the MCP tools read: self-contained input and output schemas per route.
func TestAPIRoutesToolSchemas(t *testing.T) {
	byPattern := map[string]APIRoute{}
	for _, r := range bareServer(Config{}).APIRoutes() {
		byPattern[r.Pattern] = r
		in, _ := json.Marshal(r.InputSchema())
		out, _ := json.Marshal(r.OutputSchema())
		if strings.Contains(string(in)+string(out), "$ref") {
			t.Errorf("%s: tool schemas must be self-contained: %s %s", r.Pattern, in, out)
		}
	}
	r := byPattern["GET /devices/{id}/faults"]
	if r.OperationID() != "get_devices_id_faults" || r.Tag() != "devices" || r.Access != AccessViewer {
		t.Errorf("faults route: %s %s %s", r.OperationID(), r.Tag(), r.Access)
	}
	in := r.InputSchema()
	props := in["properties"].(map[string]any)
	if props["limit"].(map[string]any)["type"] != "integer" || props["id"] == nil ||
		!slices.Equal(in["required"].([]string), []string{"id"}) {
		t.Errorf("faults input schema: %v", in)
	}
	items := r.OutputSchema()["properties"].(map[string]any)["faults"].(map[string]any)["items"].(map[string]any)
	if _, ok := items["properties"].(map[string]any)["backtrace"]; !ok {
		t.Errorf("faults output schema lacks backtrace: %v", items)
	}
	patch := byPattern["PATCH /crashes/{id}"].InputSchema()
	body := patch["properties"].(map[string]any)["body"].(map[string]any)
	if st := body["properties"].(map[string]any)["state"].(map[string]any); st["type"] == nil || body["required"] != nil {
		t.Errorf("crash patch body schema: %v", body)
	}
	if byPattern["GET /events/stream"].OutputSchema() != nil || byPattern["GET /ota/firmware/{id}/download"].OutputSchema() != nil {
		t.Error("a stream or a download has no JSON output schema")
	}
}

// BenchmarkOpenAPI measures generating and encoding the whole document (done once per server, on the first
// GET /openapi.json).
func BenchmarkOpenAPI(b *testing.B) {
	s := bareServer(Config{})
	for b.Loop() {
		if _, err := json.Marshal(s.OpenAPI()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOperationMergesContentTypes: two replies with one status are one response with both content types.
func TestOperationMergesContentTypes(t *testing.T) {
	op := operation(newSchemaGen(false), APIRoute{Pattern: "POST /x", Method: "POST", Path: "/x", Access: AccessViewer,
		RouteDoc: RouteDoc{Summary: "x", Responses: []Reply{{Status: 200, Type: okReply{}},
			{Status: 200, ContentType: "text/event-stream"}}}})
	content := op["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)
	if len(content) != 2 || content["application/json"] == nil || content["text/event-stream"] == nil {
		t.Fatalf("content %v", content)
	}
}
