package httpapi_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// ddiEnv is a server with users, device keys, blobs, OTA and the DDI API configured by cfg.
type ddiEnv struct {
	*authEnv
	store ddiDB
	camps *ota.Campaigns
}

// ddiDB is a backend: both keep DDI actions with their OTA tables.
type ddiDB interface {
	lodestone.Store
	lodestone.DDIStore
	lodestone.CredentialStore
}

// ddiBackends runs fn on SQLite and on PostgreSQL (skipped without LODESTONE_TEST_POSTGRES unless required).
func ddiBackends(t *testing.T, fn func(t *testing.T, pg bool)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, false) })
	t.Run("postgres", func(t *testing.T) { fn(t, true) })
}

func newDDIEnv(t *testing.T, cfg httpapi.DDIConfig) *ddiEnv { return newDDIEnvOn(t, cfg, false) }

func newDDIEnvOn(t *testing.T, cfg httpapi.DDIConfig, pg bool) *ddiEnv {
	t.Helper()
	srv, db, authn, api, camps := newDDIServer(t, cfg, pg)
	lite, _ := db.(*sqlite.DB)
	return &ddiEnv{authEnv: &authEnv{t: t, srv: srv, db: lite, authn: authn, api: api}, store: db, camps: camps}
}

// newDDIServer starts the server of a ddiEnv; benchmarks use it directly.
func newDDIServer(tb testing.TB, cfg httpapi.DDIConfig, pg bool) (*httptest.Server, ddiDB, *httpapi.Authn,
	*httpapi.Server, *ota.Campaigns) {
	tb.Helper()
	ctx := context.Background()
	var db ddiDB
	if pg {
		p, err := postgres.Open(ctx, pgtest.URL(tb), postgres.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		db = p
	} else {
		l, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "l.db"), sqlite.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		db = l
	}
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		tb.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Store: db, Logger: log,
		BcryptCost: bcrypt.MinCost})
	if err != nil {
		tb.Fatal(err)
	}
	blobs, err := disk.Open(filepath.Join(tb.TempDir(), "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	w := ingest.NewWriter(db, ingest.WriterConfig{}, log)
	svc := ingest.NewService(w, ingest.Config{}, log)
	otaSvc := ota.NewService(db, db, ota.Config{Logger: log})
	camps := ota.NewCampaigns(otaSvc)
	api := httpapi.New(httpapi.Config{DDI: cfg, Limits: httpapi.Limits{AuthFailures: -1}}, httpapi.Deps{
		Ingest: svc, Devices: db, Telemetry: db, Auth: authn, Logger: log, Credentials: db, Blobs: blobs,
		OTA: otaSvc, Campaigns: camps})
	hs := api.HTTPServer("", context.Background())
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	tb.Cleanup(func() {
		srv.Close()
		authn.Close()
		w.Close()
		db.Close()
	})
	return srv, db, authn, api, camps
}

var root = basic("admin", adminPass)

func targetToken(key string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "TargetToken "+key) }
}

func gatewayToken(tok string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "GatewayToken "+tok) }
}

// deviceKey makes a device key for id and returns its secret.
func (e *ddiEnv) deviceKey(id string) string {
	e.t.Helper()
	return e.do("POST", "/devices/"+id+"/keys", root, nil).must(e.t, 201).body["secret"].(string)
}

// upload stores an artifact and returns its id.
func (e *ddiEnv) upload(body []byte, version string) int64 {
	e.t.Helper()
	a := e.do("POST", "/ota/firmware", root, body, "X-Firmware-Version", version).must(e.t, 200)
	return int64(a.body["artifact"].(map[string]any)["id"].(float64))
}

func (e *ddiEnv) target(device string, fw int64) {
	e.t.Helper()
	e.do("POST", "/ota/targets", root, map[string]any{"device_id": device, "target_version": "x",
		"firmware_id": fw}).must(e.t, 200)
}

// links polls the controller and returns its links by name.
func (e *ddiEnv) links(c cred, device string) map[string]string {
	e.t.Helper()
	a := e.do("GET", "/DEFAULT/controller/v1/"+device, c, nil).must(e.t, 200)
	out := map[string]string{}
	for k, v := range a.body["_links"].(map[string]any) {
		out[k] = v.(map[string]any)["href"].(string)
	}
	if sleep := a.body["config"].(map[string]any)["polling"].(map[string]any)["sleep"]; sleep != "00:00:01" {
		e.t.Fatalf("polling sleep %v", sleep)
	}
	return out
}

// path strips the server's address from a link.
func (e *ddiEnv) path(link string) string {
	e.t.Helper()
	p, ok := strings.CutPrefix(link, e.srv.URL)
	if !ok {
		e.t.Fatalf("link %q is not on this server %s", link, e.srv.URL)
	}
	return p
}

func feedback(execution, finished string, details ...string) string {
	b, _ := json.Marshal(map[string]any{"id": 1, "time": "20260101T000000", "status": map[string]any{
		"execution": execution, "result": map[string]any{"finished": finished}, "details": details}})
	return string(b)
}

func TestDDIDeploymentAndFeedback(t *testing.T) { ddiBackends(t, testDDIDeploymentAndFeedback) }

func testDDIDeploymentAndFeedback(t *testing.T, pg bool) {
	e := newDDIEnvOn(t, httpapi.DDIConfig{PollInterval: 1e9}, pg)
	key := e.deviceKey("lin-1")
	tok := targetToken(key)
	image := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	fw := e.upload(image, "2.0.0")

	// Nothing assigned: the poll has only the configData link, and the poll made the device known.
	if l := e.links(tok, "lin-1"); len(l) != 1 || l["configData"] == "" {
		t.Fatalf("links without a target: %v", l)
	}
	e.do("GET", "/devices/lin-1", root, nil).must(t, 200)

	e.target("lin-1", fw)
	l := e.links(tok, "lin-1")
	dep := l["deploymentBase"]
	if dep == "" || !strings.Contains(dep, "/DEFAULT/controller/v1/lin-1/deploymentBase/") {
		t.Fatalf("links: %v", l)
	}
	a := e.do("GET", e.path(dep), tok, nil).must(t, 200)
	d := a.body["deployment"].(map[string]any)
	if d["download"] != "forced" || d["update"] != "forced" {
		t.Fatalf("deployment %s", a.raw)
	}
	chunk := d["chunks"].([]any)[0].(map[string]any)
	art := chunk["artifacts"].([]any)[0].(map[string]any)
	hashes := art["hashes"].(map[string]any)
	m, s1, s256 := md5.Sum(image), sha1.Sum(image), sha256.Sum256(image)
	if hashes["md5"] != hex.EncodeToString(m[:]) || hashes["sha1"] != hex.EncodeToString(s1[:]) ||
		hashes["sha256"] != hex.EncodeToString(s256[:]) || art["size"] != float64(len(image)) ||
		chunk["version"] != "x" || chunk["part"] != "bApp" || !strings.HasSuffix(art["filename"].(string), ".bin") {
		t.Fatalf("artifact %s", a.raw)
	}
	alinks := art["_links"].(map[string]any)
	if _, ok := alinks["download"]; ok {
		t.Fatalf("an HTTPS link for a plain HTTP client: %v", alinks)
	}
	dl := e.path(alinks["download-http"].(map[string]any)["href"].(string))
	md5link := e.path(alinks["md5sum-http"].(map[string]any)["href"].(string))

	// Range download, as a resumed transfer asks.
	got := e.do("GET", dl, tok, nil, "Range", "bytes=100-199").must(t, 206)
	if got.raw != string(image[100:200]) {
		t.Fatalf("range body %q", got.raw)
	}
	if got := e.do("GET", dl, tok, nil).must(t, 200); got.raw != string(image) {
		t.Fatal("full download differs")
	}
	if got := e.do("GET", md5link, tok, nil).must(t, 200); !strings.HasPrefix(got.raw, hex.EncodeToString(m[:])+"  ") {
		t.Fatalf("MD5SUM %q", got.raw)
	}
	list := e.do("GET", fmt.Sprintf("/DEFAULT/controller/v1/lin-1/softwaremodules/%d/artifacts", fw), tok, nil).
		must(t, 200)
	if !strings.Contains(list.raw, `"filename"`) || !strings.HasPrefix(list.raw, "[") {
		t.Fatalf("artifact list %s", list.raw)
	}

	// Another device's key sees nothing of lin-1; a module not assigned is refused.
	other := targetToken(e.deviceKey("lin-2"))
	e.do("GET", "/DEFAULT/controller/v1/lin-1", other, nil).must(t, 403)
	e.do("GET", dl, other, nil).must(t, 403)
	e.do("GET", strings.Replace(dl, "/lin-1/", "/lin-2/", 1), other, nil).must(t, 403)

	fbURL := e.path(strings.Split(dep, "?")[0]) + "/feedback"
	e.do("POST", fbURL, tok, feedback("proceeding", "none", "Installing")).must(t, 200)
	e.do("POST", fbURL, tok, feedback("closed", "bogus")).must(t, 400)
	e.do("POST", fbURL, tok, `{"id":1,"status":{"execution":"sideways"}}`).must(t, 400)
	e.do("POST", fbURL, tok, feedback("closed", "success", "done")).must(t, 200)
	e.do("POST", fbURL, tok, feedback("closed", "success")).must(t, 409)
	if l := e.links(tok, "lin-1"); l["deploymentBase"] != "" {
		t.Fatalf("a closed deployment is offered again: %v", l)
	}
	dev := e.do("GET", "/devices/lin-1", root, nil).must(t, 200)
	if fwv := dev.body["device"].(map[string]any)["firmware_version"]; fwv != "x" {
		t.Fatalf("the device record after success: %s", dev.raw)
	}

	acts := e.do("GET", "/devices/lin-1/ddi-actions", root, nil).must(t, 200)
	first := acts.body["actions"].([]any)[0].(map[string]any)
	if first["status"] != "closed" || first["result"] != "success" || first["detail"] != "done" ||
		first["retrieved_at"] == nil || first["firmware_id"] != float64(fw) {
		t.Fatalf("actions %s", acts.raw)
	}

	// configData lands in the device's attributes; the link then stops being offered.
	cfgURL := "/DEFAULT/controller/v1/lin-1/configData"
	e.do("PUT", cfgURL, tok, `{"id":"","mode":"merge","data":{"hwRevision":"2","VIN":"JH4"}}`).must(t, 200)
	e.do("PUT", cfgURL, tok, `{"mode":"sideways","data":{}}`).must(t, 400)
	e.do("PUT", cfgURL, tok, `{"data":{"bad":"a\u0000b"}}`).must(t, 400)
	attrs := e.do("GET", "/devices/lin-1/attributes", root, nil).must(t, 200)
	if at := attrs.body["attributes"].(map[string]any); at["hwRevision"] != "2" || at["VIN"] != "JH4" {
		t.Fatalf("attributes %s", attrs.raw)
	}
	if l := e.links(tok, "lin-1"); l["configData"] != "" {
		t.Fatalf("configData asked again: %v", l)
	}

	// A new assignment, fetched, then cleared: the controller is told to cancel, and confirms.
	e.target("lin-1", fw)
	dep = e.links(tok, "lin-1")["deploymentBase"]
	e.do("GET", e.path(dep), tok, nil).must(t, 200)
	e.do("DELETE", "/ota/targets/lin-1", root, nil).must(t, 200)
	l = e.links(tok, "lin-1")
	if l["deploymentBase"] != "" || l["cancelAction"] == "" {
		t.Fatalf("after clearing the target: %v", l)
	}
	c := e.do("GET", e.path(l["cancelAction"]), tok, nil).must(t, 200)
	stop := c.body["cancelAction"].(map[string]any)["stopId"]
	if stop != c.body["id"] || !strings.HasSuffix(l["cancelAction"], "/"+stop.(string)) {
		t.Fatalf("cancel %s", c.raw)
	}
	e.do("POST", e.path(l["cancelAction"])+"/feedback", tok, feedback("closed", "success")).must(t, 200)
	if l := e.links(tok, "lin-1"); l["cancelAction"] != "" || l["deploymentBase"] != "" {
		t.Fatalf("after the cancel: %v", l)
	}
}

func TestDDIAuthentication(t *testing.T) {
	e := newDDIEnv(t, httpapi.DDIConfig{GatewayToken: "gw-secret-token", PollInterval: 1e9})
	key := e.deviceKey("lin-1")
	const poll = "/DEFAULT/controller/v1/lin-1"
	e.do("GET", poll, nil, nil).must(t, 401)
	if a := e.do("GET", poll, targetToken("lsd_not-a-key"), nil).must(t, 401); a.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without a challenge")
	}
	e.do("GET", poll, targetToken("plain"), nil).must(t, 401)
	e.do("GET", poll, bearer(key), nil).must(t, 401) // hawkBit's schemes only
	e.do("GET", poll, root, nil).must(t, 401)        // a user login is no controller
	e.do("GET", poll, targetToken(key), nil).must(t, 200)
	e.do("GET", "/default/controller/v1/lin-1", targetToken(key), nil).must(t, 200) // tenants ignore case
	e.do("GET", "/OTHER/controller/v1/lin-1", targetToken(key), nil).must(t, 404)
	e.do("GET", "/DEFAULT/controller/v1/lin-2", targetToken(key), nil).must(t, 403)
	// The gateway token speaks for every controller of the tenant; a wrong one is refused.
	e.do("GET", "/DEFAULT/controller/v1/lin-2", gatewayToken("gw-secret-token"), nil).must(t, 200)
	e.do("GET", poll, gatewayToken("gw-secret-tokeX"), nil).must(t, 401)

	// Anonymous only when enabled; no gateway token configured means none is accepted.
	anon := newDDIEnv(t, httpapi.DDIConfig{Anonymous: true, PollInterval: 1e9})
	anon.do("GET", poll, nil, nil).must(t, 200)
	anon.do("GET", poll, gatewayToken(""), nil).must(t, 401)
	anon.do("GET", poll, gatewayToken("anything"), nil).must(t, 401)
}
