package httpapi_test

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// badText is text no store can keep as sent: PostgreSQL refuses NUL in text, and invalid UTF-8 is either refused
// or silently changed. esc is its URL form, json its JSON string literal (raw bytes for invalid UTF-8).
var badText = []struct{ name, esc, json string }{
	{"NUL", "%00", `"a\u0000b"`},
	{"invalid UTF-8", "%ff%fe", "\"a\xff\xfeb\""},
}

// queryNames are the query parameters the handlers read; the check is central, so any name is refused alike.
var queryNames = []string{"build_id", "device", "device_id", "firmware_version", "install_id", "key",
	"last_event_id", "limit", "offset", "order", "project", "q", "since", "sort", "state", "status", "tag",
	"until", "version", "severity", "group"}

// jsonFields are the string fields of the request bodies (device name and tags, group name and description, OTA
// target and campaign fields, users, tokens, crash state ...).
var jsonFields = []string{"name", "tags", "description", "device_id", "device_key", "target_version",
	"firmware_version", "version", "role", "password", "notes", "state", "strategy", "title", "project",
	"source_prefix", "provisioned_by", "target_tags", "reason", "status", "into", "webhook"}

// jsonRoutes must decode their body with the shared decoder; the walk below proves it for each.
var jsonRoutes = []string{
	"POST /admin/tokens", "POST /admin/users", "PUT /admin/users/{name}", "POST /devices/register",
	"PUT /devices/{id}", "POST /groups", "PUT /groups/{id}", "POST /ota/targets", "POST /ota/campaigns",
	"POST /ota/report", "PATCH /crashes/{id}",
}

// badTextEnv is a server on store with a device, a group and a managed user for path values to name.
func badTextEnv(t *testing.T, store lodestone.Store) (*authEnv, map[string]string) {
	e := newFerriteEnv(t, store, authOpts{apiKey: "fleet-key"})
	e.do("POST", "/devices/register", asAdmin, map[string]any{"device_key": "0x00C0FFEE", "device_id": "dev1"}).
		must(t, 200)
	g := e.do("POST", "/groups", asAdmin, map[string]any{"name": "g1"})
	if g.status != 200 && g.status != 201 {
		t.Fatalf("create group: %d %s", g.status, g.raw)
	}
	gid := fmt.Sprint(g.body["id"])
	if grp, ok := g.body["group"].(map[string]any); ok {
		gid = fmt.Sprint(grp["id"])
	}
	e.do("POST", "/admin/users", asAdmin, map[string]any{"name": "u1", "password": "a-long-password-1",
		"role": "viewer"}).must(t, 201)
	return e, map[string]string{"gid": gid}
}

// credFor is a caller the route admits: the ingest key on device routes, else the admin.
func credFor(rt httpapi.Route) cred {
	if rt.Access == httpapi.AccessDevice {
		return apiKey("fleet-key")
	}
	return asAdmin
}

// fillPath puts a valid value in each {var} of a route's path, except skip, which gets bad.
func fillPath(path string, ids map[string]string, skip, bad string) string {
	out := pathVar.ReplaceAllStringFunc(path, func(v string) string {
		name := strings.Trim(v, "{}.")
		switch {
		case name == skip:
			return bad
		case strings.HasPrefix(path, "/groups/") && name == "id":
			return ids["gid"]
		case strings.HasPrefix(path, "/devices/") && name == "id", name == "device_id", name == "deviceID":
			return "dev1"
		case name == "name":
			return "u1"
		}
		return "1"
	})
	return out
}

// refused checks a 400 with a JSON error body.
func refused(t *testing.T, what string, a answer) {
	t.Helper()
	if a.status != http.StatusBadRequest {
		t.Errorf("%s: %d, want 400: %s", what, a.status, a.raw)
		return
	}
	msg, _ := a.body["error"].(string)
	if errs, _ := a.body["errors"].([]any); msg == "" && len(errs) > 0 && a.body["ok"] == false {
		msg, _ = errs[0].(string) // ingest answers in ferrite's shape, which gateways parse
	}
	if msg == "" || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: 400 without a JSON error: %s", what, a.raw)
	}
}

// TestBadTextIsRefusedOnEveryRoute walks the route table: NUL or invalid UTF-8 in any path value, query parameter,
// X- header or JSON string field is a 400 naming what is wrong, on both backends; it never reaches a store (where
// PostgreSQL answered 500) and is never silently changed (encoding/json turns invalid UTF-8 into U+FFFD).
func TestBadTextIsRefusedOnEveryRoute(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, ids := badTextEnv(t, tc.open(t))
			routes := e.api.Routes()
			for _, rt := range routes {
				method, path, _ := strings.Cut(rt.Pattern, " ")
				for _, v := range pathVar.FindAllString(path, -1) {
					for _, b := range badText {
						p := fillPath(path, ids, strings.Trim(v, "{}."), b.esc)
						refused(t, rt.Pattern+" "+b.name+" in "+v, e.do(method, p, credFor(rt), nil))
					}
				}
				// Headers that handlers store as text (net/http itself refuses NUL in a header).
				for _, h := range []string{"X-Firmware-Version", "X-Signer", "X-Notes", "X-Filename", "X-Build-Id",
					"X-Device-Id"} {
					p := fillPath(path, ids, "", "")
					refused(t, rt.Pattern+" "+h+" invalid UTF-8", e.do(method, p, credFor(rt), nil, h, "a\xff\xfeb"))
				}
				names := queryNames
				if method != "GET" {
					names = []string{"tag"}
				}
				for _, n := range names {
					for _, b := range badText {
						p := fillPath(path, ids, "", "") + "?" + n + "=" + b.esc
						refused(t, rt.Pattern+" ?"+n+"= "+b.name, e.do(method, p, credFor(rt), nil))
						// A bad parameter name is refused too.
						p = fillPath(path, ids, "", "") + "?" + n + b.esc + "=1"
						refused(t, rt.Pattern+" ?"+n+b.esc+" name", e.do(method, p, credFor(rt), nil))
					}
				}
			}
			// JSON bodies: a route that decodes JSON refuses a key given twice (also in another case, which
			// encoding/json matches to the same field) and every string field holding bad text, naming it.
			decoded := map[string]bool{}
			for _, rt := range routes {
				method, path, _ := strings.Cut(rt.Pattern, " ")
				if method != "POST" && method != "PUT" && method != "PATCH" || rt.Pattern == "POST /ingest/chunks" {
					continue
				}
				p, who := fillPath(path, ids, "", ""), credFor(rt)
				dup := e.do(method, p, who, `{"role":"viewer","ROLE":"admin"}`, "Content-Type", "application/json")
				if dup.status == 400 && strings.Contains(strings.ToLower(dup.raw), `\"role\" is given more than once`) {
					decoded[rt.Pattern] = true
				}
				for _, f := range jsonFields {
					for _, b := range badText {
						body := `{"` + f + `":` + b.json + `}`
						a := e.do(method, p, who, body, "Content-Type", "application/json")
						what := fmt.Sprintf("%s %s in %q", rt.Pattern, b.name, f)
						if decoded[rt.Pattern] {
							refused(t, what, a)
							if !strings.Contains(a.raw, `\"`+f+`\"`) {
								t.Errorf("%s: the error does not name the field: %s", what, a.raw)
							}
							continue
						}
						// Routes that take no JSON (raw uploads, actions) must still not fail on it.
						if a.status == 500 || a.status >= 400 && a.body["error"] == nil {
							t.Errorf("%s: %d: %s", what, a.status, a.raw)
						}
					}
				}
			}
			for _, want := range jsonRoutes {
				if !decoded[want] {
					t.Errorf("%s does not refuse a duplicate key", want)
				}
			}
			got := make([]string, 0, len(decoded))
			for p := range decoded {
				got = append(got, p)
			}
			sort.Strings(got)
			t.Logf("routes that decode JSON: %s", strings.Join(got, ", "))
			// Nothing bad was stored on the way.
			a := e.do("GET", "/devices/dev1", asAdmin, nil).must(t, 200)
			if strings.Contains(a.raw, `\u0000`) || strings.Contains(a.raw, "\ufffd") {
				t.Errorf("bad text stored: %s", a.raw)
			}
		})
	}
}

// TestDuplicateJSONKeysAreRefused: {"role":"viewer","role":"admin"} read as admin by us and as viewer by anything
// that checked the body before us; it is a 400 and nothing is created.
func TestDuplicateJSONKeysAreRefused(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := badTextEnv(t, tc.open(t))
			a := e.do("POST", "/admin/users", asAdmin,
				`{"name":"mallory","password":"a-long-password-1","role":"viewer","role":"admin"}`,
				"Content-Type", "application/json")
			refused(t, "duplicate role", a)
			if !strings.Contains(a.raw, "role") {
				t.Errorf("the error does not name the field: %s", a.raw)
			}
			if a := e.do("GET", "/admin/users", asAdmin, nil).must(t, 200); strings.Contains(a.raw, "mallory") {
				t.Fatalf("user created from a body with a duplicate key: %s", a.raw)
			}
			// Nested objects and arrays are checked too, and the error says where.
			a = e.do("PUT", "/devices/dev1", asAdmin, `{"name":"n","tags":"t","x":[{"a":1,"a":2}]}`,
				"Content-Type", "application/json")
			refused(t, "nested duplicate", a)
			if !strings.Contains(a.raw, `x[0].a`) {
				t.Errorf("the error does not say where: %s", a.raw)
			}
		})
	}
}

// TestBulkRegistrationKeepsGoodRows: a bad row of a bulk registration (NUL, invalid UTF-8, a duplicate key) fails
// alone with its reason; the rows beside it are stored.
func TestBulkRegistrationKeepsGoodRows(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := badTextEnv(t, tc.open(t))
			body := `[{"device_key":"0x00000A01","device_id":"good-1"},` +
				`{"device_key":"0x00000A02","device_id":"bad-1","name":"a\u0000b"},` +
				"{\"device_key\":\"0x00000A03\",\"device_id\":\"bad-2\",\"tags\":\"a\xff\"}," +
				`{"device_key":"0x00000A04","device_id":"bad-3","device_id":"bad-4"},` +
				`{"device_key":"0x00000A05","device_id":"good-2"}]`
			a := e.do("POST", "/devices/register/bulk", asAdmin, body, "Content-Type", "application/json").
				must(t, http.StatusMultiStatus)
			if a.body["registered"] != float64(2) {
				t.Fatalf("registered %v, want 2: %s", a.body["registered"], a.raw)
			}
			for _, want := range []string{`row 1: field \"name\" contains a NUL`, `row 2: field \"tags\" is not valid UTF-8`,
				`row 3: field \"device_id\" is given more than once`} {
				if !strings.Contains(a.raw, want) {
					t.Errorf("missing %q in %s", want, a.raw)
				}
			}
			e.do("GET", "/devices/good-2", asAdmin, nil).must(t, 200)
			e.do("GET", "/devices/bad-1", asAdmin, nil).must(t, 404)
		})
	}
}

// TestOutOfRangeTimesAreRefused: since=9223372036854776 (Unix seconds) overflowed time.Time into the far past and
// returned every row; a time past year 9999 is a 400 on every route that filters by time.
func TestOutOfRangeTimesAreRefused(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := badTextEnv(t, tc.open(t))
			e.do("POST", "/ingest/chunks", apiKey("fleet-key"), sdkSession("dev1", 0x00C0FFEE),
				"Content-Type", "application/octet-stream").must(t, 200)
			for _, path := range []string{"/metrics", "/faults", "/reboots", "/devices/dev1/metrics",
				"/devices/dev1/heartbeats", "/devices/dev1/traces", "/crashes/1"} {
				for _, v := range []string{"9223372036854776", "9223372036854775807", "99999999999999999999",
					"253402300800"} {
					for _, name := range []string{"since", "until"} {
						refused(t, path+"?"+name+"="+v, e.do("GET", path+"?"+name+"="+v, asAdmin, nil))
					}
				}
				// The last second of year 9999 is still a time: nothing is that recent.
				a := e.do("GET", path+"?since=253402300799", asAdmin, nil)
				if a.status != 200 && !(path == "/crashes/1" && a.status == 404) {
					t.Errorf("%s?since=253402300799: %d: %s", path, a.status, a.raw)
				}
				if strings.Contains(a.raw, `"dev1"`) {
					t.Errorf("%s?since=9999-12-31 returned rows: %s", path, a.raw)
				}
			}
		})
	}
}

// TestELFVersionIsNotAPath: ferrite filed an ELF under its X-Firmware-Version; the header is a version, held to
// the device-id rule (1-128 visible ASCII) and refused when it could name a path or break a quoted header.
func TestELFVersionIsNotAPath(t *testing.T) {
	elf, err := os.ReadFile("../symbol/testdata/firmware-O2.elf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := badTextEnv(t, tc.open(t))
			for _, v := range []string{"../../etc/passwd", "/abs", `..\..\win`, `1.0"x`, "1.0 beta",
				strings.Repeat("9", 129)} {
				a := e.do("POST", "/ingest/elf", asAdmin, elf, "X-Firmware-Version", v)
				refused(t, "X-Firmware-Version "+v, a)
				if !strings.Contains(a.raw, "X-Firmware-Version") {
					t.Errorf("%q: the error does not name the header: %s", v, a.raw)
				}
			}
			a := e.do("POST", "/ingest/elf", asAdmin, elf, "X-Firmware-Version", "1.2.3-rc.1+build.7",
				"X-Filename", "../x.elf").must(t, 200)
			got := a.body["elf"].(map[string]any)
			if got["version"] != "1.2.3-rc.1+build.7" || got["filename"] != "1.2.3-rc.1+build.7.elf" {
				t.Fatalf("stored %v", got)
			}
			// Nothing was stored for the refused uploads.
			if a := e.do("GET", "/elfs", asAdmin, nil).must(t, 200); strings.Count(a.raw, `"version"`) != 1 {
				t.Fatalf("elfs: %s", a.raw)
			}
		})
	}
}
