package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// do sends a request with optional JSON/raw body and headers (name, value pairs); admin=true adds the admin's
// Basic credentials. It returns the status, headers and body.
func (e *env) do(method, path string, body []byte, admin bool, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if admin {
		req.SetBasicAuth("admin", adminPass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

type artifactResp struct {
	OK       bool `json:"ok"`
	Artifact struct {
		ID       int64  `json:"id"`
		Version  string `json:"version"`
		BuildID  int64  `json:"build_id"`
		SHA256   string `json:"sha256"`
		Size     int64  `json:"size"`
		Filename string `json:"filename"`
		Notes    string `json:"notes"`
	} `json:"artifact"`
}

func (e *env) upload(img []byte, version, build string) artifactResp {
	e.t.Helper()
	st, _, raw := e.do("POST", "/ota/firmware", img, true, "X-Firmware-Version", version, "X-Build-Id", build,
		"X-Notes", "test image")
	var a artifactResp
	if st != 200 || json.Unmarshal(raw, &a) != nil || !a.OK {
		e.t.Fatalf("upload: %d %s", st, raw)
	}
	return a
}

func image(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFirmwareUploadAndResumableDownload(t *testing.T) {
	e := newEnv(t, opts{apiKey: "dev-key"})
	img := image(3<<20 + 17)
	a := e.upload(img, "2.1.0", "42")
	if a.Artifact.SHA256 != hexSum(img) || a.Artifact.Size != int64(len(img)) || a.Artifact.BuildID != 42 ||
		a.Artifact.Filename != "2.1.0-b42-"+hexSum(img)[:8]+".bin" || a.Artifact.Notes != "test image" {
		t.Fatalf("artifact %+v", a.Artifact)
	}
	if again := e.upload(img, "2.1.0", "42"); again.Artifact.ID != a.Artifact.ID {
		t.Fatalf("same upload twice made a second artifact: %d", again.Artifact.ID)
	}
	url := fmt.Sprintf("/ota/firmware/%d/download", a.Artifact.ID)

	// Devices use the ingest key, not a login.
	if st, h, _ := e.do("GET", url, nil, true); st != 401 || h.Get("WWW-Authenticate") != "ApiKey" {
		t.Fatalf("admin login without key: %d", st)
	}
	// An interrupted download: the connection drops after 1 MiB.
	req, _ := http.NewRequest("GET", e.srv.URL+url, nil)
	req.Header.Set("X-API-Key", "dev-key")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag != `"`+hexSum(img)+`"` || resp.Header.Get("X-Firmware-SHA256") != hexSum(img) ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.ContentLength != int64(len(img)) {
		t.Fatalf("download headers: %d %v", resp.StatusCode, resp.Header)
	}
	part := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Resume from where it stopped, guarded by If-Range.
	st, h, rest := e.do("GET", url, nil, false, "X-API-Key", "dev-key", "Range", fmt.Sprintf("bytes=%d-", len(part)),
		"If-Range", etag)
	if st != 206 || h.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", len(part), len(img)-1, len(img)) {
		t.Fatalf("resume: %d %v", st, h)
	}
	if got := hexSum(append(part, rest...)); got != hexSum(img) {
		t.Fatalf("resumed image checksum %s", got)
	}
	// A stale validator gets the whole, current image instead of a mismatched tail.
	if st, _, body := e.do("GET", url, nil, false, "X-API-Key", "dev-key", "Range", "bytes=10-",
		"If-Range", `"stale"`); st != 200 || len(body) != len(img) {
		t.Fatalf("stale If-Range: %d %d", st, len(body))
	}
	if st, _, _ := e.do("GET", url, nil, false, "X-API-Key", "dev-key", "If-None-Match", etag); st != 304 {
		t.Fatalf("If-None-Match: %d", st)
	}
	if st, _, _ := e.do("GET", url, nil, false, "X-API-Key", "dev-key", "Range", "bytes=99999999-"); st != 416 {
		t.Fatalf("unsatisfiable range: %d", st)
	}
	var list struct {
		Artifacts []map[string]any `json:"artifacts"`
	}
	if st := e.get("/ota/firmware", &list); st != 200 || len(list.Artifacts) != 1 {
		t.Fatalf("list: %d %v", st, list)
	}
	if st, _, _ := e.do("GET", "/ota/firmware/999/download", nil, false, "X-API-Key", "dev-key"); st != 404 {
		t.Fatalf("missing artifact: %d", st)
	}
	if st, _, _ := e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", a.Artifact.ID), nil, true); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if _, err := e.blobs.Stat(context.Background(), hexSum(img)); err == nil {
		t.Fatal("blob left behind after the last artifact using it was deleted")
	}
}

func TestFirmwareUploadRejectsBadInput(t *testing.T) {
	e := newEnv(t, opts{})
	for _, tc := range []struct {
		body []byte
		hdr  []string
		want string
	}{
		{nil, nil, "empty body"},
		{[]byte("x"), []string{"X-Build-Id", "abc"}, "X-Build-Id"},
		{[]byte("x"), []string{"X-Firmware-Version", "../../etc"}, "X-Firmware-Version"},
		{[]byte("x"), []string{"X-Firmware-Version", `a"b`}, "X-Firmware-Version"},
	} {
		st, _, raw := e.do("POST", "/ota/firmware", tc.body, true, tc.hdr...)
		if st != 400 || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%v: %d %s", tc.hdr, st, raw)
		}
	}
	if st, _, _ := e.do("POST", "/ota/firmware", []byte("x"), false); st != 401 {
		t.Fatalf("anonymous upload: %d", st)
	}
	for _, body := range []string{`{`, `{"name":"x","firmware_id":1,"waves":[50]}`, `{"firmware_id":1}`,
		`{"name":"x","firmware_id":1,"strategy":"yolo"}`, `{"name":"x","firmware_id":1,"target_group_id":3}`} {
		if st, _, raw := e.do("POST", "/ota/campaigns", []byte(body), true); st != 400 && st != 404 {
			t.Errorf("campaign %s: %d %s", body, st, raw)
		}
	}
	if st, _, _ := e.do("POST", "/ota/campaigns", []byte(`{"name":"x","firmware_id":77}`), true); st != 404 {
		t.Fatalf("campaign for a missing artifact: %d", st)
	}
}

// otaSession is a DeviceInfo and a Heartbeat from one device.
func otaSession(id, version string, build uint64) []byte {
	info := chunk.DeviceInfo{DeviceID: id, FirmwareVersion: version, BuildID: build}
	b := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: info.AppendPayload(nil)}.Encode()
	hb := chunk.Heartbeat{UptimeTicks: 1}
	return append(b, chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast, Seq: 1,
		Payload: hb.AppendPayload(nil)}.Encode()...)
}

type otaIngest struct {
	OK  bool `json:"ok"`
	OTA *struct {
		Version    string `json:"version"`
		BuildID    uint64 `json:"build_id"`
		Size       int64  `json:"size"`
		SHA256     string `json:"sha256"`
		URL        string `json:"url"`
		FirmwareID int64  `json:"firmware_id"`
		Signature  string `json:"signature"`
	} `json:"ota"`
}

func TestCampaignOverHTTPWithIngestOffers(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	e := newEnv(t, opts{signing: priv})
	for i := range 4 {
		if st, _, raw := e.post(nil, otaSession(fmt.Sprintf("d%d", i), "1.0", 10)); st != 200 {
			t.Fatalf("seed: %d %s", st, raw)
		}
	}
	img := image(100_000)
	a := e.upload(img, "2.0", "20")
	body := fmt.Sprintf(`{"name":"to 2.0","firmware_id":%d,"target_version":"2.0","device_ids":["d0","d1","d2"],`+
		`"waves":[34,100],"soak_seconds":0,"health_ratio":0}`, a.Artifact.ID)
	st, _, raw := e.do("POST", "/ota/campaigns", []byte(body), true)
	var created struct {
		Campaign struct {
			ID     int64  `json:"id"`
			Status string `json:"status"`
		} `json:"campaign"`
		DevicesAdded int `json:"devices_added"`
	}
	if st != 201 || json.Unmarshal(raw, &created) != nil || created.DevicesAdded != 3 ||
		created.Campaign.Status != "created" {
		t.Fatalf("create: %d %s", st, raw)
	}
	cid := created.Campaign.ID
	st, _, raw = e.do("POST", fmt.Sprintf("/ota/campaigns/%d/activate", cid), nil, true)
	if st != 200 || !strings.Contains(string(raw), `"targets_set":2`) {
		t.Fatalf("activate: %d %s", st, raw) // ceil(34% of 3) = 2 canaries
	}
	// d0 learns of the update in its ingest answer, with a verifiable signature.
	st, _, text := e.post(nil, otaSession("d0", "1.0", 10))
	var got otaIngest
	if st != 200 || json.Unmarshal([]byte(text), &got) != nil || got.OTA == nil {
		t.Fatalf("ingest answer: %d %s", st, raw)
	}
	o := got.OTA
	if o.Version != "2.0" || o.BuildID != 20 || o.SHA256 != hexSum(img) || o.Size != int64(len(img)) ||
		o.URL != fmt.Sprintf("/ota/firmware/%d/download", a.Artifact.ID) {
		t.Fatalf("offer %+v", o)
	}
	var m struct {
		Manifest  string `json:"manifest"`
		Signature string `json:"signature"`
	}
	_, _, raw2 := e.do("GET", fmt.Sprintf("/ota/firmware/%d/manifest", a.Artifact.ID), nil, false)
	json.Unmarshal(raw2, &m)
	sig, _ := base64.StdEncoding.DecodeString(m.Signature)
	if !ed25519.Verify(pub, []byte(m.Manifest), sig) || m.Signature != o.Signature ||
		!strings.Contains(m.Manifest, hexSum(img)) {
		t.Fatalf("manifest %q does not verify", m.Manifest)
	}
	// d3 is outside the campaign: nothing offered, ferrite's exact answer.
	if _, _, raw := e.post(nil, otaSession("d3", "1.0", 10)); strings.Contains(raw, "ota") {
		t.Fatalf("d3 offered: %s", raw)
	}
	// d1 polls instead, reports progress, then its next session confirms the install.
	st, _, raw = e.do("GET", "/ota/check/d1?version=1.0&build_id=10", nil, false)
	if st != 200 || !strings.Contains(string(raw), `"version":"2.0"`) {
		t.Fatalf("poll: %d %s", st, raw)
	}
	if st, _, raw := e.do("POST", "/ota/report", []byte(`{"device_id":"d1","status":"downloading"}`), false); st != 200 ||
		!strings.Contains(string(raw), `"campaign_status":"downloading"`) {
		t.Fatalf("report: %d %s", st, raw)
	}
	if st, _, _ := e.do("POST", "/ota/report", []byte(`{"device_id":"d1","status":"bogus"}`), false); st != 400 {
		t.Fatalf("bad report: %d", st)
	}
	if _, _, raw := e.post(nil, otaSession("d1", "2.0", 20)); strings.Contains(raw, "ota") {
		t.Fatalf("installed device offered again: %s", raw)
	}
	if st, _, _ := e.do("GET", "/ota/check/d1?version=2.0&build_id=20", nil, false); st != 204 {
		t.Fatalf("poll after install: %d", st)
	}
	var sum struct {
		Campaign struct {
			Installed int `json:"installed"`
			Offered   int `json:"offered"`
			Pending   int `json:"pending"`
		} `json:"campaign"`
	}
	if st := e.get(fmt.Sprintf("/ota/campaigns/%d", cid), &sum); st != 200 || sum.Campaign.Installed != 1 ||
		sum.Campaign.Offered != 1 || sum.Campaign.Pending != 1 {
		t.Fatalf("summary: %d %+v", st, sum)
	}
	// Firmware in use by a campaign cannot be deleted.
	if st, _, _ := e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", a.Artifact.ID), nil, true); st != 409 {
		t.Fatalf("delete used firmware: %d", st)
	}
	st, _, raw = e.do("POST", fmt.Sprintf("/ota/campaigns/%d/rollback", cid), nil, true)
	if st != 200 || !strings.Contains(string(raw), `"targets_removed":2`) {
		t.Fatalf("rollback: %d %s", st, raw)
	}
	if st, _, _ := e.do("POST", fmt.Sprintf("/ota/campaigns/%d/pause", cid), nil, true); st != 400 {
		t.Fatalf("pause after rollback: %d", st)
	}
	var targets struct {
		Targets []map[string]any `json:"targets"`
	}
	if e.get("/ota/targets", &targets); len(targets.Targets) != 0 {
		t.Fatalf("targets after rollback: %v", targets.Targets)
	}
}

func TestOTATargetsFerriteShapes(t *testing.T) {
	e := newEnv(t, opts{})
	st, _, raw := e.do("POST", "/ota/targets",
		[]byte(`{"device_id":"s-1","target_version":"3.0","target_build_id":9,"firmware_url":"https://cdn/x.bin"}`), true)
	if st != 200 || !strings.Contains(string(raw), `"target":{"id":1,"device_id":"s-1","target_version":"3.0",`+
		`"target_build_id":9,"firmware_url":"https://cdn/x.bin","created_at":"`) {
		t.Fatalf("set: %d %s", st, raw)
	}
	if st, _, raw := e.do("GET", "/ota/targets/none", nil, true); st != 404 ||
		!strings.Contains(string(raw), "no OTA target for this device") {
		t.Fatalf("missing: %d %s", st, raw)
	}
	if st, _, _ := e.do("POST", "/ota/targets", []byte(`{"device_id":"","target_version":"1"}`), true); st != 400 {
		t.Fatalf("empty device id: %d", st)
	}
	if st, _, _ := e.do("DELETE", "/ota/targets/s-1", nil, true); st != 200 {
		t.Fatalf("delete: %d", st)
	}
}

func TestOTADeviceKeySpeaksOnlyForItsDevice(t *testing.T) {
	e := newAuthEnv(t, authOpts{apiKey: "fleet-key"})
	root := basic("admin", adminPass)
	key := e.do("POST", "/devices/dev-a/keys", root, nil).must(t, 201).body["secret"].(string)
	if a := e.do("GET", "/ota/check/dev-a?version=1.0", apiKey(key), nil); a.status != 204 {
		t.Fatalf("own poll: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", "/ota/check/dev-b?version=1.0", apiKey(key), nil); a.status != 403 {
		t.Fatalf("poll for another device: %d %s", a.status, a.raw)
	}
	if a := e.do("POST", "/ota/report", apiKey(key), map[string]string{"device_id": "dev-b",
		"status": "failed"}); a.status != 403 {
		t.Fatalf("report for another device: %d %s", a.status, a.raw)
	}
	// The fleet-wide ingest key speaks for every device, as on ingest.
	if a := e.do("GET", "/ota/check/dev-b?version=1.0", apiKey("fleet-key"), nil); a.status != 204 {
		t.Fatalf("fleet key: %d %s", a.status, a.raw)
	}
}

func TestCampaignTargetsGroupOverHTTP(t *testing.T) {
	e := newEnv(t, opts{})
	for i := range 4 {
		if st, _, raw := e.post(nil, otaSession(fmt.Sprintf("d%d", i), "1.0", 10)); st != 200 {
			t.Fatalf("seed: %d %s", st, raw)
		}
	}
	st, _, raw := e.do("POST", "/groups", []byte(`{"name":"canaries"}`), true)
	var g struct {
		Group struct {
			ID int64 `json:"id"`
		} `json:"group"`
	}
	if st != 201 || json.Unmarshal(raw, &g) != nil {
		t.Fatalf("group: %d %s", st, raw)
	}
	for _, d := range []string{"d2", "d0"} {
		if st, _, raw := e.do("POST", fmt.Sprintf("/groups/%d/devices/%s", g.Group.ID, d), nil, true); st != 200 {
			t.Fatalf("add %s: %d %s", d, st, raw)
		}
	}
	a := e.upload(image(1000), "2.0", "20")
	body := fmt.Sprintf(`{"name":"canaries first","firmware_id":%d,"target_group_id":%d}`, a.Artifact.ID, g.Group.ID)
	st, _, raw = e.do("POST", "/ota/campaigns", []byte(body), true)
	var created struct {
		Campaign struct {
			ID            int64  `json:"id"`
			TargetGroupID *int64 `json:"target_group_id"`
		} `json:"campaign"`
		DevicesAdded int `json:"devices_added"`
	}
	if st != 201 || json.Unmarshal(raw, &created) != nil || created.DevicesAdded != 2 ||
		created.Campaign.TargetGroupID == nil || *created.Campaign.TargetGroupID != g.Group.ID {
		t.Fatalf("create: %d %s", st, raw)
	}
	var devs struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
		} `json:"devices"`
	}
	if st := e.get(fmt.Sprintf("/ota/campaigns/%d/devices", created.Campaign.ID), &devs); st != 200 ||
		len(devs.Devices) != 2 || devs.Devices[0].DeviceID != "d0" || devs.Devices[1].DeviceID != "d2" {
		t.Fatalf("campaign devices: %d %+v", st, devs)
	}
	if st, _, raw := e.do("POST", fmt.Sprintf("/ota/campaigns/%d/activate", created.Campaign.ID), nil, true); st != 200 ||
		!strings.Contains(string(raw), `"targets_set":2`) {
		t.Fatalf("activate: %d %s", st, raw)
	}
	// Members are offered the update; the others are not.
	for d, offered := range map[string]bool{"d0": true, "d1": false, "d2": true, "d3": false} {
		if _, _, raw := e.post(nil, otaSession(d, "1.0", 10)); strings.Contains(raw, `"ota"`) != offered {
			t.Errorf("%s offered=%v: %s", d, !offered, raw)
		}
	}
	// The group is held while the campaign runs.
	if st, _, raw := e.do("DELETE", fmt.Sprintf("/groups/%d", g.Group.ID), nil, true); st != 409 {
		t.Fatalf("delete targeted group: %d %s", st, raw)
	}
	st, _, raw = e.do("POST", "/ota/campaigns", []byte(fmt.Sprintf(`{"name":"x","firmware_id":%d,"target_group_id":999}`,
		a.Artifact.ID)), true)
	if st != 404 || !strings.Contains(string(raw), "group 999 not found") {
		t.Fatalf("unknown group: %d %s", st, raw)
	}
}
