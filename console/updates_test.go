package console

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// updEnv is env with the updates pages' services: the OTA service and campaigns over the SQLite store, and a disk
// blob store.
func updEnv(t *testing.T, maxBytes int64) (*env, *disk.Store) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", "admin-pass")
	if err != nil {
		t.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: "vic:viewer-pass:viewer", Store: db,
		Logger: log, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	svc := ota.NewService(db, db, ota.Config{Logger: log})
	e := &env{t: t, db: db, now: time.Now()}
	var api *httpapi.Server
	e.con, err = New(Config{Logger: log, Devices: db, Registry: db, Groups: db, Telemetry: db, Crashes: db,
		Series: db, Counts: db, Membership: db, Targets: db, Credentials: db, Sessions: db,
		Updates: UpdatesDeps{OTA: svc, Campaigns: ota.NewCampaigns(svc), Blobs: blobs, MaxBytes: maxBytes},
		SignIn: func(w http.ResponseWriter, r *http.Request, user, pass string) (*lodestone.Principal, error) {
			return api.SignIn(w, r, user, pass)
		}})
	if err != nil {
		t.Fatal(err)
	}
	w := ingest.NewWriter(db, ingest.WriterConfig{}, log)
	api = httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log), Devices: db,
		Telemetry: db, Auth: authn, Logger: log, Credentials: db, Console: e.con})
	e.srv = httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		authn.Close()
		w.Close()
		db.Close()
	})
	return e, blobs
}

// updUpload posts a multipart form with its parts in the given order ("file" is the file part).
func updUpload(e *env, c *http.Client, path string, parts [][2]string, file []byte, xhr bool) resp {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range parts {
		if p[0] == "file" {
			fw, _ := mw.CreateFormFile("file", "image.bin")
			fw.Write(file)
			continue
		}
		mw.WriteField(p[0], p[1])
	}
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if xhr {
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
	}
	r, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header.Get("Location"), string(b), r.Header}
}

func blobCount(t *testing.T, blobs *disk.Store) int {
	n := 0
	if err := blobs.Walk(context.Background(), func(lodestone.BlobRef) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFirmwareUploadStreamsAfterTheToken checks the streamed upload: a form whose file comes before its CSRF
// token, or without one, or from a viewer, stores nothing; a good one over the 4 MiB form limit is stored whole
// with its facts, its XHR variant answers where to go, and an oversize image is refused and leaves no blob.
func TestFirmwareUploadStreamsAfterTheToken(t *testing.T) {
	e, blobs := updEnv(t, 6<<20)
	admin := e.client()
	tok := e.signIn(admin, "admin", "admin-pass")
	img := bytes.Repeat([]byte("firmware"), 5<<17) // 5 MiB
	fields := func(first ...[2]string) [][2]string {
		return append(first, [2]string{"version", "3.1.0"}, [2]string{"build_id", "31"}, [2]string{"notes", "n"},
			[2]string{"file"})
	}
	if r := updUpload(e, admin, "/ui/updates/firmware", append([][2]string{{"file"}}, [2]string{"csrf", tok}), img, false); r.status != http.StatusForbidden {
		t.Errorf("file before the token: %d", r.status)
	}
	if r := updUpload(e, admin, "/ui/updates/firmware", fields(), img, false); r.status != http.StatusForbidden {
		t.Errorf("no token: %d", r.status)
	}
	viewer := e.client()
	vtok := e.signIn(viewer, "vic", "viewer-pass")
	if r := updUpload(e, viewer, "/ui/updates/firmware", fields([2]string{"csrf", vtok}), img, false); r.status != http.StatusForbidden {
		t.Errorf("viewer: %d", r.status)
	}
	if n := blobCount(t, blobs); n != 0 {
		t.Fatalf("refused uploads left %d blobs", n)
	}
	r := updUpload(e, admin, "/ui/updates/firmware", fields([2]string{"csrf", tok}), img, false)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/ui/updates/firmware/") {
		t.Fatalf("upload: %d %q %s", r.status, r.loc, r.body)
	}
	page := e.get(admin, r.loc)
	for _, want := range []string{"3.1.0", "5242880 bytes", "Uploaded 3.1.0 (5.0 MiB"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("artifact page lacks %q", want)
		}
	}
	fws, _ := e.db.FindFirmware(context.Background())
	if len(fws) != 1 || fws[0].Size != int64(len(img)) || fws[0].BuildID != 31 {
		t.Fatalf("stored artifacts %+v", fws)
	}
	// The same upload again is the stored artifact; the script's request gets JSON naming the page.
	r = updUpload(e, admin, "/ui/updates/firmware", fields([2]string{"csrf", tok}), img, true)
	var j map[string]string
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &j) != nil || j["location"] != "/ui/updates/firmware/"+itoa(fws[0].ID) {
		t.Fatalf("XHR upload: %d %s", r.status, r.body)
	}
	// Over the limit: refused with the reason, nothing stored.
	r = updUpload(e, admin, "/ui/updates/firmware", fields([2]string{"csrf", tok}), bytes.Repeat([]byte("x"), 7<<20), false)
	if r.status != http.StatusSeeOther || !strings.Contains(e.get(admin, r.loc).body, "over the 6.0 MiB limit") {
		t.Errorf("oversize: %d %q", r.status, r.loc)
	}
	if n := blobCount(t, blobs); n != 1 {
		t.Errorf("%d blobs after an oversize upload, want 1", n)
	}
	// A bad version is refused with the rule.
	r = updUpload(e, admin, "/ui/updates/firmware", [][2]string{{"csrf", tok}, {"version", "../etc"}, {"file"}}, img, false)
	if !strings.Contains(e.get(admin, r.loc).body, "without quotes, slashes") {
		t.Errorf("bad version not explained")
	}
}

// TestCampaignFormAndConfirmation checks the create form's checks (kept values, reasons) and that an action runs
// only once confirmed.
func TestCampaignFormAndConfirmation(t *testing.T) {
	e, _ := updEnv(t, 0)
	ctx := context.Background()
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		if err := e.db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: id, ReceivedAt: time.Now(),
			Info: &lodestone.DeviceInfo{FirmwareVersion: "1.0"}}}); err != nil {
			t.Fatal(err)
		}
	}
	fw := &lodestone.Firmware{Version: "2.0", SHA256: strings.Repeat("ab", 32), Size: 3, Filename: "2.0.bin", CreatedAt: time.Now()}
	if err := e.db.CreateFirmware(ctx, fw); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	tok := e.signIn(c, "admin", "admin-pass")
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {tok}, "name": {"roll"}, "firmware_id": {itoa(fw.ID)}, "canary": {"25"},
			"waves": {"100"}, "soak": {"1h"}, "health_ratio": {"2"}, "failure_threshold": {"5"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"soak", "forever"}, "is not a duration"},
		{[]string{"canary", "0"}, "canary size"},
		{[]string{"waves", "50, 20"}, "waves must be"},
		{[]string{"health_ratio", "-1"}, "health-gate ratio"},
		{[]string{"firmware_id", "99"}, "not found"},
		{[]string{"device_ids", "d1", "from_version", "1.0"}, "cannot be combined"},
		{[]string{"group_id", "77"}, "group 77 not found"},
	} {
		r := e.post(c, "/ui/updates/campaigns", form(tc.kv...))
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, tc.want) || !strings.Contains(r.body, `value="roll"`) {
			t.Errorf("%v: %d, want 422 with %q and the form kept", tc.kv, r.status, tc.want)
		}
	}
	r := e.post(c, "/ui/updates/campaigns", form("from_version", "1.0", "activate", "1"))
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	page := e.get(c, r.loc).body
	if !strings.Contains(page, "with 4 devices") || !strings.Contains(page, "to 1 of them") {
		t.Fatalf("after create:\n%s", page)
	}
	// Unconfirmed: sent to the confirmation page, nothing changes.
	r2 := e.post(c, r.loc+"/pause", url.Values{"csrf": {tok}})
	if r2.status != http.StatusSeeOther || r2.loc != r.loc+"/pause" {
		t.Fatalf("unconfirmed pause: %d %q", r2.status, r2.loc)
	}
	confirm := e.get(c, r2.loc).body
	if !strings.Contains(confirm, "already offered keep their targets") || !strings.Contains(confirm, `name="confirm" value="yes"`) {
		t.Fatalf("confirmation page:\n%s", confirm)
	}
	camps, _ := e.db.FindCampaigns(ctx)
	if camps[0].Status != lodestone.CampaignActive {
		t.Fatalf("status after an unconfirmed pause: %s", camps[0].Status)
	}
	r2 = e.post(c, r.loc+"/pause", url.Values{"csrf": {tok}, "confirm": {"yes"}})
	if r2.status != http.StatusSeeOther || !strings.Contains(e.get(c, r2.loc).body, "Campaign paused") {
		t.Fatalf("confirmed pause: %d %q", r2.status, r2.loc)
	}
	// An action the status does not allow is refused with the reason.
	if r := e.get(c, r.loc+"/pause"); r.status != http.StatusBadRequest {
		t.Errorf("confirming a pause of a paused campaign: %d", r.status)
	}
	entries, err := e.db.FindAudit(ctx, lodestone.AuditFilter{Action: "campaign.pause"})
	if err != nil || len(entries) != 1 || entries[0].Via != lodestone.ViaConsole || entries[0].Actor != "admin" {
		t.Fatalf("audit of the pause: %v %+v", err, entries)
	}
}
