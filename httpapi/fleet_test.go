package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func devIDs(a answer) []string {
	var out []string
	for _, d := range a.body["devices"].([]any) {
		out = append(out, d.(map[string]any)["device_id"].(string))
	}
	return out
}

func TestDeviceRegisterUpdateFerriteShapes(t *testing.T) {
	e := newAuthEnv(t, authOpts{users: "pat:prov-pass:provisioner"})
	prov := basic("pat", "prov-pass")
	a := e.do("POST", "/devices/register", prov, map[string]any{"device_key": "A3-00F1B2", "name": "pump",
		"tags": "north,hvac"}).must(t, 200)
	d := a.body["device"].(map[string]any)
	if d["device_id"] != "A300F1B2" || d["device_key"] != float64(0xA300F1B2) || d["status"] != "provisioned" ||
		d["name"] != "pump" || d["tags"] != "north,hvac" || d["provisioned_by"] != "pat" || d["provisioned_at"] == nil {
		t.Fatalf("registered %s", a.raw)
	}
	// ferrite's bad-key answer; a tags array is a wrong type (422), as in ferrite.
	a = e.do("POST", "/devices/register", prov, map[string]any{"device_key": "xyz"}).must(t, 400)
	if a.body["error"] != "invalid device_key hex" {
		t.Fatalf("bad key %s", a.raw)
	}
	e.do("POST", "/devices/register", prov, map[string]any{"device_key": "01", "tags": []string{"a"}}).must(t, 422)
	// Read and edit by hex key, as ferrite's CLI does; null keeps.
	e.do("GET", "/devices/0xA300F1B2", prov, nil).must(t, 200)
	a = e.do("PUT", "/devices/A300F1B2", prov, map[string]any{"name": "pump-2", "tags": nil}).must(t, 200)
	if d := a.body["device"].(map[string]any); d["name"] != "pump-2" || d["tags"] != "north,hvac" {
		t.Fatalf("updated %s", a.raw)
	}
	e.do("PUT", "/devices/nope", prov, map[string]any{"name": "x"}).must(t, 404)
	// lodestone's device_id links the key to a device that reports under its own id.
	e.do("POST", "/ingest/chunks", nil, v("V1")).must(t, 200)
	a = e.do("POST", "/devices/register", prov, map[string]any{"device_key": "00000042",
		"device_id": "test-device"}).must(t, 200)
	if d := a.body["device"].(map[string]any); d["device_id"] != "test-device" || d["status"] != "online" ||
		d["device_key"] != float64(0x42) {
		t.Fatalf("linked %s", a.raw)
	}
	// The key belongs to test-device now: registering it elsewhere is a conflict.
	e.do("POST", "/devices/register", prov, map[string]any{"device_key": "42"}).must(t, 409)
}

func TestDeviceBulkRegisterReportsEachRow(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	body := `[{"device_key":"01","name":"one"},{"device_key":"zz"},{"device_key":"02","tags":["x"]},
		{"device_id":"other","device_key":"01"},{"device_key":"03","tags":"lab"}]`
	a := e.do("POST", "/devices/register/bulk", root, body).must(t, 207)
	if a.body["registered"] != float64(2) || len(a.body["devices"].([]any)) != 2 {
		t.Fatalf("bulk %s", a.raw)
	}
	errs := a.body["errors"].([]any)
	want := []string{"invalid device_key: zz", "row 2: tags must be a string",
		`01: device key 00000001 already belongs to device "00000001"`}
	if len(errs) != len(want) {
		t.Fatalf("errors %v", errs)
	}
	for i, w := range want {
		if errs[i] != w {
			t.Errorf("error %d: %q, want %q", i, errs[i], w)
		}
	}
	res := a.body["results"].([]any)
	for i, ok := range []bool{true, false, false, false, true} {
		r := res[i].(map[string]any)
		if r["index"] != float64(i) || r["ok"] != ok {
			t.Errorf("result %d: %v", i, r)
		}
	}
	if res[4].(map[string]any)["device_id"] != "00000003" {
		t.Fatalf("row 4 %v", res[4])
	}
	// All good: 200 and errors present but empty, as ferrite.
	a = e.do("POST", "/devices/register/bulk", root, `[{"device_key":"04"}]`).must(t, 200)
	if !strings.Contains(a.raw, `"errors":[]`) || a.body["registered"] != float64(1) {
		t.Fatalf("all good %s", a.raw)
	}
	e.do("POST", "/devices/register/bulk", root, `{"device_key":"05"}`).must(t, 400)
	e.do("POST", "/devices/register/bulk", root, "["+strings.Repeat(`{"device_key":"1"},`, 1000)+`{}]`).must(t, 400)
}

func TestDeviceListFiltersAndOrder(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		fw := "1.0"
		if id != "a" {
			fw = "2.0"
		}
		if err := e.db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: id, ReceivedAt: t0.Add(time.Duration(i) * time.Second),
			Info: &lodestone.DeviceInfo{FirmwareVersion: fw}}}); err != nil {
			t.Fatal(err)
		}
	}
	e.do("PUT", "/devices/a", root, map[string]any{"name": "zulu", "tags": `["roof","lab"]`}).must(t, 200)
	e.do("PUT", "/devices/c", root, map[string]any{"name": "alpha", "tags": "roof"}).must(t, 200)
	gid := e.do("POST", "/groups", root, map[string]any{"name": "g"}).must(t, 201).body["group"].(map[string]any)["id"]
	g := itoa(int(gid.(float64)))
	e.do("POST", "/groups/"+g+"/devices/b", root, nil).must(t, 200)
	e.do("POST", "/groups/"+g+"/devices/c", root, nil).must(t, 200)
	for q, want := range map[string]string{
		"":                                  "c,b,a",
		"?tag=roof":                         "c,a",
		"?tag=lab":                          "a",
		"?group_id=" + g:                    "c,b",
		"?group_id=" + g + "&tag=roof":      "c",
		"?firmware_version=2.0":             "c,b",
		"?sort=name":                        "c,a,b",
		"?sort=name&order=desc":             "a,c,b",
		"?sort=device_id":                   "a,b,c",
		"?sort=last_seen&order=asc&limit=2": "a,b",
		"?sort=id&offset=1":                 "b,c",
	} {
		a := e.do("GET", "/devices"+q, root, nil).must(t, 200)
		if got := strings.Join(devIDs(a), ","); got != want {
			t.Errorf("GET /devices%s: %s, want %s", q, got, want)
		}
	}
	for _, q := range []string{"?sort=bogus", "?order=up", "?group_id=x", "?status=lost", "?limit=-1"} {
		if a := e.do("GET", "/devices"+q, root, nil); a.status != 400 || a.body["code"] != "invalid" {
			t.Errorf("GET /devices%s: %d %s", q, a.status, a.raw)
		}
	}
}

func TestGroupsFerriteRoutes(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	root := basic("admin", adminPass)
	e.do("POST", "/ingest/chunks", nil, v("V1")).must(t, 200)
	a := e.do("POST", "/groups", root, map[string]any{"name": "north", "description": "roof units"}).must(t, 201)
	g := a.body["group"].(map[string]any)
	if g["name"] != "north" || g["description"] != "roof units" || g["device_count"] != float64(0) ||
		g["created_at"] == nil {
		t.Fatalf("created %s", a.raw)
	}
	id := itoa(int(g["id"].(float64)))
	if a := e.do("POST", "/groups", root, map[string]any{"name": " "}).must(t, 400); a.body["error"] != "name is required" {
		t.Fatalf("no name %s", a.raw)
	}
	e.do("POST", "/groups", root, map[string]any{"name": "north"}).must(t, 409)
	e.do("POST", "/groups", root, map[string]any{"name": "aaa"}).must(t, 201)

	e.do("POST", "/groups/"+id+"/devices/test-device", root, nil).must(t, 200)
	if a := e.do("POST", "/groups/"+id+"/devices/test-device", root, nil).must(t, 409); a.body["error"] != "device already in group" {
		t.Fatalf("twice %s", a.raw)
	}
	if a := e.do("POST", "/groups/"+id+"/devices/ghost", root, nil).must(t, 404); a.body["error"] != "group or device not found" {
		t.Fatalf("ghost %s", a.raw)
	}
	a = e.do("GET", "/groups", root, nil).must(t, 200)
	gs := a.body["groups"].([]any)
	if len(gs) != 2 || gs[0].(map[string]any)["name"] != "aaa" || gs[1].(map[string]any)["device_count"] != float64(1) {
		t.Fatalf("groups %s", a.raw)
	}
	if got := devIDs(e.do("GET", "/groups/"+id+"/devices", root, nil).must(t, 200)); len(got) != 1 || got[0] != "test-device" {
		t.Fatalf("members %v", got)
	}
	a = e.do("PUT", "/groups/"+id, root, map[string]any{"name": "south"}).must(t, 200)
	if g := a.body["group"].(map[string]any); g["name"] != "south" || g["description"] != "roof units" {
		t.Fatalf("updated %s", a.raw)
	}
	e.do("PUT", "/groups/"+id, root, map[string]any{"name": "aaa"}).must(t, 409)
	e.do("DELETE", "/groups/"+id+"/devices/test-device", root, nil).must(t, 200)
	if a := e.do("DELETE", "/groups/"+id+"/devices/test-device", root, nil).must(t, 404); a.body["error"] != "membership not found" {
		t.Fatalf("remove twice %s", a.raw)
	}
	e.do("DELETE", "/groups/"+id, root, nil).must(t, 200)
	if a := e.do("GET", "/groups/"+id, root, nil).must(t, 404); a.body["error"] != "group not found" {
		t.Fatalf("gone %s", a.raw)
	}
	e.do("DELETE", "/groups/"+id, root, nil).must(t, 404)
	e.do("GET", "/groups/abc", root, nil).must(t, 400)
	// ferrite answers an unknown group's members with an empty list.
	if a := e.do("GET", "/groups/999/devices", root, nil).must(t, 200); !strings.Contains(a.raw, `"devices":[]`) {
		t.Fatalf("unknown group members %s", a.raw)
	}
}

func TestDeviceDeleteRemovesKeysAndHistory(t *testing.T) {
	e := newAuthEnv(t, authOpts{apiKey: "fleet-key"})
	root := basic("admin", adminPass)
	key := e.do("POST", "/devices/test-device/keys", root, nil).must(t, 201).body["secret"].(string)
	e.do("POST", "/ingest/chunks", apiKey(key), v("V1", "V5", "V4")).must(t, 200)
	if m := e.do("GET", "/devices/test-device/metrics", root, nil).must(t, 200); len(m.body["metrics"].([]any)) == 0 {
		t.Fatalf("no metrics stored: %s", m.raw)
	}
	e.do("DELETE", "/devices/test-device", root, nil).must(t, 200)
	e.do("GET", "/devices/test-device", root, nil).must(t, 404)
	if m := e.do("GET", "/metrics", root, nil).must(t, 200); len(m.body["metrics"].([]any)) != 0 {
		t.Fatalf("metrics kept: %s", m.raw)
	}
	// Its key is gone with it, at once.
	e.do("POST", "/ingest/chunks", apiKey(key), v("V1")).must(t, 401)
	if k := e.do("GET", "/devices/test-device/keys", root, nil).must(t, 200); len(k.body["keys"].([]any)) != 0 {
		t.Fatalf("keys kept: %s", k.raw)
	}
	e.do("DELETE", "/devices/test-device", root, nil).must(t, 404)
	// By device_id on ferrite's admin route.
	e.do("POST", "/ingest/chunks", apiKey("fleet-key"), v("V1")).must(t, 200)
	e.do("DELETE", "/admin/devices/test-device", root, nil).must(t, 200)
	e.do("DELETE", "/admin/devices/test-device", root, nil).must(t, 404)
}
