package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/fuota"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
)

// fuotaEnv is the main API and the ESP32 FUOTA listener over one store and one blob store, with manifest signing
// on, as cmd/lodestone wires them: what the FUOTA login (shared by a whole ESP32 fleet) can reach of the rest of
// OTA is tested across both.
type fuotaEnv struct {
	*authEnv
	fuota *httptest.Server
	store lodestone.Store
	pub   ed25519.PublicKey
}

const fuotaUser, fuotaPass = "esp-fleet", "built-into-every-esp32"

func newFUOTAEnv(t *testing.T, store lodestone.Store) *fuotaEnv {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(context.Background(), store, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := store.(lodestone.CredentialStore)
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: ferriteUsers, Store: creds, Logger: log,
		BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	w := ingest.NewWriter(store, ingest.WriterConfig{}, log)
	otaSvc := ota.NewService(store, store, ota.Config{Logger: log, SigningKey: priv})
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log),
		Devices: store, Telemetry: store, Auth: authn, IngestKey: httpapi.NewAPIKey("fleet-key"), Logger: log,
		Blobs: blobs, Credentials: creds, OTA: otaSvc, Campaigns: ota.NewCampaigns(otaSvc)})
	hs := api.HTTPServer("", context.Background())
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	fh, err := fuota.New(fuota.Config{Username: fuotaUser, Password: fuotaPass, Logger: log}, otaSvc, blobs)
	if err != nil {
		t.Fatal(err)
	}
	fsrv := httptest.NewServer(fh)
	t.Cleanup(func() {
		fsrv.Close()
		srv.Close()
		authn.Close()
		w.Close()
		store.Close()
	})
	return &fuotaEnv{authEnv: &authEnv{t: t, srv: srv, authn: authn, api: api}, fuota: fsrv, store: store, pub: pub}
}

// esp sends a request to the FUOTA listener with the fleet's login, as the seed's curl commands do; hdr are
// name, value pairs.
func (e *fuotaEnv) esp(method, path, body string, hdr ...string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.fuota.URL+path, bytes.NewReader([]byte(body)))
	req.SetBasicAuth(fuotaUser, fuotaPass)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = []string{hdr[i+1]}
	}
	resp, err := e.fuota.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// session posts one device's DeviceInfo + heartbeat with the ingest key and returns the answer's offer.
func (e *fuotaEnv) session(device, version string, build uint64) *offerJSON {
	e.t.Helper()
	a := e.do("POST", "/ingest/chunks", apiKey("fleet-key"), otaSession(device, version, build))
	a.must(e.t, 200)
	var got struct {
		OTA *offerJSON `json:"ota"`
	}
	json.Unmarshal([]byte(a.raw), &got)
	return got.OTA
}

type offerJSON struct {
	Version    string `json:"version"`
	SHA256     string `json:"sha256"`
	FirmwareID int64  `json:"firmware_id"`
	Signature  string `json:"signature"`
}

type artifactJSON struct {
	ID        int64  `json:"id"`
	Version   string `json:"version"`
	BuildID   uint64 `json:"build_id_u64"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	Filename  string `json:"filename"`
	Origin    string `json:"origin"`
	FUOTAPath string `json:"fuota_path"`
	Approved  bool   `json:"approved"`
}

func (e *fuotaEnv) artifact(id int64) artifactJSON {
	e.t.Helper()
	var out struct {
		Artifact artifactJSON `json:"artifact"`
	}
	a := e.do("GET", fmt.Sprintf("/ota/firmware/%d", id), asViewer, nil).must(e.t, 200)
	if err := json.Unmarshal([]byte(a.raw), &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Artifact
}

// artifacts lists every artifact, newest first.
func (e *fuotaEnv) artifacts() []artifactJSON {
	e.t.Helper()
	var out struct {
		Artifacts []artifactJSON `json:"artifacts"`
	}
	json.Unmarshal([]byte(e.do("GET", "/ota/firmware", asViewer, nil).must(e.t, 200).raw), &out)
	return out.Artifacts
}

func (e *fuotaEnv) uploadAs(c cred, img []byte, version, build string) artifactJSON {
	e.t.Helper()
	var out struct {
		Artifact artifactJSON `json:"artifact"`
	}
	a := e.do("POST", "/ota/firmware", c, img, "X-Firmware-Version", version, "X-Build-Id", build)
	json.Unmarshal([]byte(a.must(e.t, 200).raw), &out)
	return out.Artifact
}

// download fetches an artifact's bytes and signature header with a credential.
func (e *fuotaEnv) download(c cred, id int64) (int, []byte, string) {
	e.t.Helper()
	a := e.do("GET", fmt.Sprintf("/ota/firmware/%d/download", id), c, nil)
	return a.status, []byte(a.raw), a.header.Get("X-Firmware-Signature")
}

// verifies reports whether sig is the server's signature over a manifest naming these bytes.
func (e *fuotaEnv) verifies(f artifactJSON, sig string) bool {
	payload, _ := json.Marshal(struct {
		Version  string `json:"version"`
		BuildID  uint64 `json:"build_id"`
		Size     int64  `json:"size"`
		SHA256   string `json:"sha256"`
		Filename string `json:"filename"`
	}{f.Version, f.BuildID, f.Size, f.SHA256, f.Filename})
	raw, err := base64.StdEncoding.DecodeString(sig)
	return err == nil && sig != "" && ed25519.Verify(e.pub, payload, raw)
}

func (e *fuotaEnv) campaign(fwID int64, devices string) int64 {
	e.t.Helper()
	a := e.do("POST", "/ota/campaigns", asProvisioner, map[string]any{"name": "c", "firmware_id": fwID,
		"target_version": "2.0", "device_ids": json.RawMessage(devices), "waves": []int{100}, "soak_seconds": 0,
		"health_ratio": 0}).must(e.t, 201)
	id := int64(a.body["campaign"].(map[string]any)["id"].(float64))
	e.do("POST", fmt.Sprintf("/ota/campaigns/%d/activate", id), asProvisioner, nil).must(e.t, 200)
	return id
}

func bothBackends(t *testing.T, fn func(t *testing.T, e *fuotaEnv)) {
	for _, tc := range []struct {
		name string
		open func(*testing.T) lodestone.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(tc.name, func(t *testing.T) { fn(t, newFUOTAEnv(t, tc.open(t))) })
	}
}

// TestFUOTACannotReplaceOperatorArtifact is the attack: with the FUOTA login, PUT /files/<name> over an
// artifact a provisioner uploaded through /ota/firmware, which an active campaign uses. The original must stay
// as it was (bytes, blob, signature), and the attacker's bytes must never be signed.
func TestFUOTACannotReplaceOperatorArtifact(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		e.session("d0", "1.0", 10) // a ferrite device
		img, evil := image(50_000), []byte("attacker's image")
		orig := e.uploadAs(asProvisioner, img, "2.0", "20")
		cid := e.campaign(orig.ID, `["d0"]`)
		if o := e.session("d0", "1.0", 10); o == nil || o.SHA256 != hexSum(img) || !e.verifies(orig, o.Signature) {
			t.Fatalf("campaign offer before the attack: %+v", o)
		}

		if st, body := e.esp("PUT", "/files/"+orig.Filename, string(evil)); st != http.StatusConflict {
			t.Fatalf("FUOTA PUT over an operator artifact: %d %s", st, body)
		}
		if st, body := e.esp("DELETE", "/files/"+orig.Filename, ""); st != http.StatusMethodNotAllowed {
			t.Fatalf("FUOTA DELETE /files: %d %s", st, body)
		}
		// Nothing changed: the same artifact, bytes, blob and signature, and no other artifact exists.
		if got := e.artifact(orig.ID); got != orig {
			t.Fatalf("artifact changed: %+v, was %+v", got, orig)
		}
		if list := e.artifacts(); len(list) != 1 {
			t.Fatalf("artifacts after the attack: %+v", list)
		}
		st, body, sig := e.download(apiKey("fleet-key"), orig.ID)
		if st != 200 || !bytes.Equal(body, img) || !e.verifies(orig, sig) {
			t.Fatalf("download after the attack: %d, same bytes %v, signature ok %v", st, bytes.Equal(body, img),
				e.verifies(orig, sig))
		}
		if o := e.session("d0", "1.0", 10); o == nil || o.SHA256 != hexSum(img) || !e.verifies(orig, o.Signature) {
			t.Fatalf("campaign offer after the attack: %+v", o)
		}
		// Read-only, not invisible: the FUOTA login may still download it (an operator's target can name it).
		if st, body := e.esp("GET", "/files/"+orig.Filename, ""); st != 200 || body != string(img) {
			t.Fatalf("FUOTA GET of an operator artifact: %d", st)
		}
		// Deleting it is refused on the operator's route too while the campaign uses it.
		e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", orig.ID), asProvisioner, nil).must(t, 409)
		_ = cid
	})
}

// TestFUOTAUploadIsANewArtifact: a FUOTA upload that a provisioner approved and a campaign uses is never
// replaced in place; a new PUT under its path is a new, unsigned artifact, and the campaign keeps its bytes.
func TestFUOTAUploadIsANewArtifact(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		e.session("d0", "1.0", 10)
		if st, body := e.esp("PUT", "/files/app.bin", "version one"); st != 200 {
			t.Fatalf("PUT /files: %d %s", st, body)
		}
		v1 := e.artifacts()[0]
		e.do("POST", fmt.Sprintf("/ota/firmware/%d/approve", v1.ID), asProvisioner, nil).must(t, 200)
		v1 = e.artifact(v1.ID)
		e.campaign(v1.ID, `["d0"]`)
		if st, body := e.esp("PUT", "/files/app.bin", "version two, unreviewed"); st != 200 {
			t.Fatalf("second PUT /files: %d %s", st, body)
		}
		list := e.artifacts()
		if len(list) != 2 || list[0].ID == v1.ID || list[0].Approved || list[0].FUOTAPath != "app.bin" {
			t.Fatalf("artifacts: %+v", list)
		}
		if got := e.artifact(v1.ID); got != v1 {
			t.Fatalf("approved artifact changed: %+v, was %+v", got, v1)
		}
		st, body, sig := e.download(apiKey("fleet-key"), v1.ID)
		if st != 200 || string(body) != "version one" || !e.verifies(v1, sig) {
			t.Fatalf("campaign artifact: %d %q", st, body)
		}
		if o := e.session("d0", "1.0", 10); o == nil || o.FirmwareID != v1.ID || !e.verifies(v1, o.Signature) {
			t.Fatalf("campaign offer: %+v", o)
		}
		// The FUOTA path serves the newest upload to the ESP32s, unsigned (the FUOTA protocol has no signature).
		if st, body := e.esp("GET", "/files/app.bin", ""); st != 200 || body != "version two, unreviewed" {
			t.Fatalf("FUOTA GET: %d %q", st, body)
		}
		if _, _, sig := e.download(apiKey("fleet-key"), list[0].ID); sig != "" {
			t.Fatal("an unapproved FUOTA upload was signed")
		}
		// Neither can be deleted while used (the campaign's), and the blob is intact.
		e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", v1.ID), asProvisioner, nil).must(t, 409)
	})
}

// TestFUOTACannotSteerOtherTargets is the second attack: with the FUOTA login, set or delete the target
// of a ferrite device, a campaign member, or any target set through /ota/targets.
func TestFUOTACannotSteerOtherTargets(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		e.session("d0", "1.0", 10) // ferrite devices
		e.session("d1", "1.0", 10)
		e.session("d2", "1.0", 10)
		e.espOK("PUT", "/files/evil.bin", "attacker's image").must200(t)
		op := e.uploadAs(asProvisioner, image(1000), "2.0", "20")
		e.do("POST", "/ota/targets", asProvisioner, map[string]any{"device_id": "d0", "target_version": "2.0",
			"firmware_id": op.ID}).must(t, 200)
		e.do("POST", "/ota/targets", asProvisioner, map[string]any{"device_id": "esp-op", "target_version": "2.0",
			"firmware_id": op.ID}).must(t, 200)
		e.campaign(op.ID, `["d2","esp-member"]`) // both offered at once (one wave of 100%)
		e.do("POST", "/ota/campaigns", asProvisioner, map[string]any{"name": "later", "firmware_id": op.ID,
			"target_version": "2.0", "device_ids": []string{"esp-pending"}}).must(t, 201)
		before := e.do("GET", "/ota/targets", asViewer, nil).must(t, 200).raw

		for _, dev := range []string{"d0", "d1", "d2", "esp-op", "esp-member", "esp-pending"} {
			if st, body := e.esp("PUT", "/devices/"+dev, fmt.Sprintf(`"%s","1.0","evil.bin"`, dev)); st != 403 {
				t.Errorf("FUOTA PUT /devices/%s: %d %s", dev, st, body)
			}
			if st, body := e.esp("DELETE", "/devices/"+dev, ""); st != 403 && !(st == 404 && (dev == "d1" ||
				dev == "esp-pending")) {
				t.Errorf("FUOTA DELETE /devices/%s: %d %s", dev, st, body)
			}
		}
		if after := e.do("GET", "/ota/targets", asViewer, nil).must(t, 200).raw; after != before {
			t.Fatalf("targets changed:\n%s\n%s", before, after)
		}
		if o := e.session("d1", "1.0", 10); o != nil {
			t.Fatalf("d1 offered %+v", o)
		}
		// A version reported through the shared login confirms nothing in a campaign.
		if st, _ := e.esp("GET", "/devices/d2?app_ver=2.0", ""); st != 204 {
			t.Fatalf("FUOTA check of a campaign device: %d", st)
		}
		devs := e.do("GET", "/ota/campaigns/1/devices", asViewer, nil).must(t, 200).raw
		if bytes.Contains([]byte(devs), []byte("installed")) {
			t.Fatalf("FUOTA check confirmed an install: %s", devs)
		}
		// FUOTA's own rows for its own devices work as the contract says; it still cannot name an operator file.
		e.espOK("PUT", "/devices/esp-1", `"esp-1","1.0","evil.bin"`).must200(t)
		if st, body := e.esp("GET", "/devices/esp-1?app_ver=1.0", ""); st != 200 || body != "evil.bin" {
			t.Fatalf("own row: %d %q", st, body)
		}
		if st, _ := e.esp("PUT", "/devices/esp-2", fmt.Sprintf(`"esp-2","1.0","%s"`, op.Filename)); st != 400 {
			t.Fatalf("FUOTA row naming an operator artifact: %d", st)
		}
		e.espOK("DELETE", "/devices/esp-1", "").must200(t)
	})
}

// TestFUOTAUploadSignedOnlyOnceApproved: nothing uploaded with the FUOTA login carries the server's signature
// (download header, /manifest, ingest offer) until a provisioner approves it; ESP32s download it all along.
func TestFUOTAUploadSignedOnlyOnceApproved(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		e.session("d0", "1.0", 10)
		e.espOK("PUT", "/files/esp.bin", "esp32 image").must200(t)
		f := e.artifacts()[0]
		e.do("POST", "/ota/targets", asProvisioner, map[string]any{"device_id": "d0", "target_version": f.Version,
			"firmware_id": f.ID}).must(t, 200)
		check := func(signed bool) {
			t.Helper()
			st, body, sig := e.download(apiKey("fleet-key"), f.ID)
			if st != 200 || string(body) != "esp32 image" || (sig != "") != signed || signed && !e.verifies(f, sig) {
				t.Fatalf("download: %d %q signature %q, want signed %v", st, body, sig, signed)
			}
			m := e.do("GET", fmt.Sprintf("/ota/firmware/%d/manifest", f.ID), apiKey("fleet-key"), nil)
			if signed && (m.status != 200 || m.body["signature"] != sig) || !signed && m.status != 404 {
				t.Fatalf("manifest: %d %s, want signed %v", m.status, m.raw, signed)
			}
			if o := e.session("d0", "1.0", 10); o == nil || (o.Signature != "") != signed {
				t.Fatalf("offer: %+v, want signed %v", o, signed)
			}
			if st, body := e.esp("GET", "/files/esp.bin", ""); st != 200 || body != "esp32 image" {
				t.Fatalf("FUOTA download: %d %q", st, body)
			}
		}
		check(false)
		if f.Origin != "fuota" || f.Approved {
			t.Fatalf("FUOTA upload: %+v", f)
		}
		e.do("POST", fmt.Sprintf("/ota/firmware/%d/approve", f.ID), asViewer, nil).must(t, 403)
		check(false)
		a := e.do("POST", fmt.Sprintf("/ota/firmware/%d/approve", f.ID), asProvisioner, nil).must(t, 200)
		if art := a.body["artifact"].(map[string]any); art["approved"] != true || art["approved_by"] != "pat" {
			t.Fatalf("approve: %s", a.raw)
		}
		check(true)
		e.do("POST", "/ota/firmware/99999/approve", asProvisioner, nil).must(t, 404)
		// Used by a target, it cannot be deleted; once unused it can, and its blob goes with it.
		e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", f.ID), asProvisioner, nil).must(t, 409)
		e.do("DELETE", "/ota/targets/d0", asProvisioner, nil).must(t, 200)
		e.do("DELETE", fmt.Sprintf("/ota/firmware/%d", f.ID), asProvisioner, nil).must(t, 200)
		if st, _ := e.esp("GET", "/files/esp.bin", ""); st != 404 {
			t.Fatalf("FUOTA GET after delete: %d", st)
		}
	})
}

// TestDeviceKeyDownloadsOnlyItsTarget: a device key fetches only the artifact its own device's target names; the
// ingest key keeps fetching any.
func TestDeviceKeyDownloadsOnlyItsTarget(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		keyA := e.do("POST", "/devices/dev-a/keys", asAdmin, nil).must(t, 201).body["secret"].(string)
		keyB := e.do("POST", "/devices/dev-b/keys", asAdmin, nil).must(t, 201).body["secret"].(string)
		imgA, imgB := image(3000), image(4000)
		a := e.uploadAs(asProvisioner, imgA, "2.0", "20")
		b := e.uploadAs(asProvisioner, imgB, "3.0", "30")
		e.do("POST", "/ota/targets", asProvisioner, map[string]any{"device_id": "dev-a", "target_version": "2.0",
			"firmware_id": a.ID}).must(t, 200)
		if st, body, _ := e.download(apiKey(keyA), a.ID); st != 200 || !bytes.Equal(body, imgA) {
			t.Fatalf("own target: %d", st)
		}
		for _, tc := range []struct {
			key string
			id  int64
		}{{keyA, b.ID}, {keyB, a.ID}, {keyB, b.ID}} {
			if st, _, _ := e.download(apiKey(tc.key), tc.id); st != 403 {
				t.Errorf("download of %d not targeted at the key's device: %d", tc.id, st)
			}
			m := e.do("GET", fmt.Sprintf("/ota/firmware/%d/manifest", tc.id), apiKey(tc.key), nil)
			if m.status != 403 {
				t.Errorf("manifest of %d not targeted at the key's device: %d", tc.id, m.status)
			}
		}
		// A ferrite-style target that names the artifact by its download URL counts too.
		e.do("POST", "/ota/targets", asProvisioner, map[string]any{"device_id": "dev-b", "target_version": "3.0",
			"firmware_url": fmt.Sprintf("/ota/firmware/%d/download", b.ID)}).must(t, 200)
		if st, body, _ := e.download(apiKey(keyB), b.ID); st != 200 || !bytes.Equal(body, imgB) {
			t.Fatalf("URL target: %d", st)
		}
		for _, id := range []int64{a.ID, b.ID} {
			if st, _, _ := e.download(apiKey("fleet-key"), id); st != 200 {
				t.Fatalf("ingest key download of %d: %d", id, st)
			}
		}
	})
}

// TestFUOTARefusesUnstorableText: NUL bytes and invalid UTF-8 in what the FUOTA listener stores (a path, an
// app_ver, a version header) are a 400 on both backends, never a 5xx.
func TestFUOTARefusesUnstorableText(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		e.espOK("PUT", "/files/ok.bin", "image").must200(t)
		for _, tc := range []struct {
			method, path, body string
			hdr                []string
		}{
			{"PUT", "/files/%FF%FE.bin", "image", nil},
			{"GET", "/files/%FF%FE.bin", "", nil},
			{"PUT", "/files/v.bin", "image", []string{"X-Firmware-Version", "1.0\xff"}},
			{"PUT", "/devices/esp-1", "\"esp-1\",\"1.0\x00\",\"ok.bin\"", nil},
			{"PUT", "/devices/esp-1", "\"esp-1\",\"1.0\xff\",\"ok.bin\"", nil},
			{"PUT", "/devices/esp-1", "\"esp-1\",\"1.0\",\"ok\xff.bin\"", nil},
		} {
			if st, body := e.esp(tc.method, tc.path, tc.body, tc.hdr...); st != 400 {
				t.Errorf("%s %s %q %q: %d %s", tc.method, tc.path, tc.body, tc.hdr, st, body)
			}
		}
	})
}

type espAnswer struct {
	status int
	body   string
}

func (e *fuotaEnv) espOK(method, path, body string) espAnswer {
	e.t.Helper()
	st, b := e.esp(method, path, body)
	return espAnswer{st, b}
}

// must200 fails the test unless the FUOTA request answered 200.
func (a espAnswer) must200(t *testing.T) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("FUOTA request: %d %s", a.status, a.body)
	}
}
