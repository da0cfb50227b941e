package fuota_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/fuota"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

const user, pass = "fuota-user", "s3cret-pass"

type env struct {
	t      testing.TB
	srv    *httptest.Server
	db     *sqlite.DB
	svc    *ota.Service
	caFile string
	logs   *bytes.Buffer
}

func newEnvTB(tb testing.TB) *env { return newEnv(tb, 0) }

func newEnv(t testing.TB, maxFile int64) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := ota.NewService(db, db, ota.Config{Logger: log})
	h, err := fuota.New(fuota.Config{Username: user, Password: pass, MaxFileBytes: maxFile, Logger: log}, svc, blobs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(dir, "ca_cert.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	return &env{t: t, srv: srv, db: db, svc: svc, caFile: ca, logs: logs}
}

func TestNewRefusesEmptyCredentials(t *testing.T) {
	if _, err := fuota.New(fuota.Config{Username: "u"}, nil, nil); err == nil {
		t.Fatal("empty password accepted")
	}
}

var statusLine = regexp.MustCompile(`(?m)^< HTTP/[0-9.]+ (\d{3})`)

// curl runs one of the seed's curl commands as written there (the seed's flags, in its order) and returns the
// status from the --verbose trace and the body.
func (e *env) curl(args ...string) (string, string) {
	e.t.Helper()
	full := append([]string{"-u", user + ":" + pass, "--cacert", e.caFile, "--verbose"}, args...)
	cmd := exec.Command("curl", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("curl %v: %v\n%s", args, err, stderr.String())
	}
	m := statusLine.FindAllStringSubmatch(stderr.String(), -1)
	if m == nil {
		e.t.Fatalf("no status in curl trace:\n%s", stderr.String())
	}
	return m[len(m)-1][1], stdout.String() // the last: a large PUT gets "100 Continue" first
}

// TestSeedCurlCommands runs every curl command of the seed README, unchanged, against the listener.
func TestSeedCurlCommands(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required for this test (apt-get install -y curl)")
	}
	e := newEnv(t, 0)
	u := e.srv.URL // https://127.0.0.1:port
	dir := t.TempDir()
	img := bytes.Repeat([]byte("esp32 app image "), 70_000)
	local := filepath.Join(dir, "app-v2.bin")
	os.WriteFile(local, img, 0o644)

	if st, _ := e.curl("--request", "PUT", "--data-binary", "@"+local, "--header",
		"Content-Type: application/octet-stream", u+"/files/app-v2.bin"); st != "200" {
		t.Fatalf("PUT /files: %s", st)
	}
	if st, _ := e.curl("--request", "PUT", "--data", `"esp32-01","1.0.0","app-v2.bin"`, "--header",
		"Content-Type: text/csv", u+"/devices/esp32-01"); st != "200" {
		t.Fatalf("PUT /devices: %s", st)
	}
	if st, body := e.curl("--request", "GET", u+"/devices"); st != "200" ||
		body != "\"esp32-01\",\"1.0.0\",\"app-v2.bin\"\n" {
		t.Fatalf("GET /devices: %s %q", st, body)
	}
	// The device's check, with the unescaped ':' the ESP32 sends in versions.
	if st, body := e.curl("--request", "GET", u+"/devices/esp32-01?app_ver=1.0.0"); st != "200" ||
		body != "app-v2.bin" {
		t.Fatalf("check: %s %q", st, body)
	}
	if st, _ := e.curl("--request", "GET", u+"/devices/esp32-01?app_ver=2:0"); st != "204" {
		t.Fatalf("check other version: %s", st)
	}
	out := filepath.Join(dir, "downloaded.bin")
	if st, _ := e.curl("--request", "GET", "--output", out, u+"/files/app-v2.bin"); st != "200" {
		t.Fatalf("GET /files: %s", st)
	}
	if got, _ := os.ReadFile(out); sha256.Sum256(got) != sha256.Sum256(img) {
		t.Fatal("downloaded file differs")
	}
	if st, _ := e.curl("--request", "DELETE", "--header", "Content-Type: text/csv", u+"/devices/esp32-01"); st != "200" {
		t.Fatalf("DELETE: %s", st)
	}
	if st, _ := e.curl("--request", "DELETE", "--header", "Content-Type: text/csv", u+"/devices/esp32-01"); st != "404" {
		t.Fatalf("DELETE again: %s", st)
	}
	// Credentials never reach the log, not even base64-encoded.
	if strings.Contains(e.logs.String(), pass) || strings.Contains(e.logs.String(), "Basic ") {
		t.Fatalf("credentials in the log:\n%s", e.logs.String())
	}
}

func (e *env) req(method, path string, body []byte, auth bool) (int, string, http.Header) {
	e.t.Helper()
	r, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if auth {
		r.SetBasicAuth(user, pass)
	}
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestContractStatuses(t *testing.T) {
	e := newEnv(t, 1<<20)
	e.req("PUT", "/files/fw.bin", []byte("firmware"), true)
	e.req("PUT", "/devices/dev-1", []byte(`"dev-1","1.0","fw.bin"`), true)
	for _, tc := range []struct {
		method, path, body string
		auth               bool
		want               int
	}{
		{"GET", "/devices", "", false, 403},
		{"GET", "/devices/dev-1?app_ver=1.0", "", false, 403},
		{"GET", "/devices/dev-1", "", true, 400},                         // no query string
		{"GET", "/devices/dev-1?x=1", "", true, 400},                     // no app_ver
		{"GET", "/devices/dev-1?app_ver=1.0&app_ver=1.0", "", true, 400}, // twice
		{"GET", "/devices/nobody?app_ver=1.0", "", true, 404},
		{"GET", "/devices/dev-1?app_ver=0.9", "", true, 204},
		{"GET", "/devices/dev-1/extra", "", true, 400},
		{"GET", "/nothing", "", true, 404},
		{"GET", "/files/missing.bin", "", true, 404},
		{"GET", "/files/../l.db", "", true, 400},                         // traversal
		{"PUT", "/files/../../x", "evil", true, 400},                     // traversal
		{"PUT", "/files/a%22b", "x", true, 400},                          // a double quote
		{"PUT", "/devices/dev-2", `"dev-X","1.0","fw.bin"`, true, 400},   // body/path mismatch
		{"PUT", "/devices/dev-2", `"dev-2","1.0"`, true, 400},            // two fields
		{"PUT", "/devices/dev-2", `"dev-2","1.0","nope.bin"`, true, 400}, // no such file
		{"PUT", "/devices/dev-2", "\"dev-2\",\"1\",\"fw.bin\"\n\"dev-2\",\"1\",\"fw.bin\"", true, 400},
		{"GET", "/devices/x'OR'1'='1?app_ver=1.0", "", true, 404}, // no SQL from strings
		{"PUT", "/files/big.bin", strings.Repeat("x", 1<<20+1), true, 413},
		{"POST", "/devices", "", true, 405},
	} {
		st, body, _ := e.req(tc.method, tc.path, []byte(tc.body), tc.auth)
		if st != tc.want {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, st, tc.want, body)
		}
		if st == 403 && body != "" {
			t.Errorf("403 with a body: %q", body)
		}
	}
	st, body, h := e.req("GET", "/devices/dev-1?app_ver=1.0", nil, true)
	if st != 200 || body != "fw.bin" || h.Get("Content-Type") != "text/csv" || h.Get("Content-Length") != "6" {
		t.Fatalf("check: %d %q %v", st, body, h)
	}
	// The row survived the injection attempt.
	if _, body, _ := e.req("GET", "/devices", nil, true); body != "\"dev-1\",\"1.0\",\"fw.bin\"\n" {
		t.Fatalf("rows: %q", body)
	}
}

func TestRowsAreLodestoneTargets(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	e.req("PUT", "/files/v3.bin", []byte("three"), true)
	e.req("PUT", "/devices/esp-7", []byte(`"esp-7","2.0","v3.bin"`), true)
	tg, err := e.db.FindTarget(ctx, "esp-7")
	if err != nil || tg.FromVersion == nil || *tg.FromVersion != "2.0" || tg.FirmwareID == nil {
		t.Fatalf("target %+v %v", tg, err)
	}
	f, err := e.db.FindFirmwareByFilename(ctx, "v3.bin")
	if err != nil || f.Size != 5 || *tg.FirmwareID != f.ID {
		t.Fatalf("artifact %+v %v", f, err)
	}
	// Replacing the file keeps the row pointing at it and serves the new bytes; the old blob goes away.
	e.req("PUT", "/files/v3.bin", []byte("three, fixed"), true)
	if _, body, _ := e.req("GET", "/files/v3.bin", nil, true); body != "three, fixed" {
		t.Fatalf("replaced file: %q", body)
	}
	// A target set through lodestone's API shows in the CSV and answers the device.
	if err := e.db.SetTarget(ctx, &lodestone.OTATarget{DeviceID: "esp-8", TargetVersion: "v3.bin",
		FirmwareID: &f.ID, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := e.req("GET", "/devices/esp-8?app_ver=1.0", nil, true); st != 200 || body != "v3.bin" {
		t.Fatalf("API target via FUOTA: %d %q", st, body)
	}
	if _, body, _ := e.req("GET", "/devices", nil, true); !strings.Contains(body, "\"esp-8\",\"\",\"v3.bin\"\n") {
		t.Fatalf("rows: %q", body)
	}
	// Range resumes a download here too.
	r, _ := http.NewRequest("GET", e.srv.URL+"/files/v3.bin", nil)
	r.SetBasicAuth(user, pass)
	r.Header.Set("Range", "bytes=7-")
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(b) != "fixed" {
		t.Fatalf("range: %d %q", resp.StatusCode, b)
	}
}

func TestKeepAlive(t *testing.T) {
	e := newEnv(t, 0)
	e.req("PUT", "/files/k.bin", []byte("k"), true)
	e.req("PUT", "/devices/k", []byte(`"k","1","k.bin"`), true)
	reused := 0
	for range 5 {
		r, _ := http.NewRequest("GET", e.srv.URL+"/devices/k?app_ver=1", nil)
		r.SetBasicAuth(user, pass)
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			}}))
		resp, err := e.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if reused < 4 {
		t.Fatalf("only %d of 5 checks reused the connection", reused)
	}
}
