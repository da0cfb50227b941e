package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// doctorJSON runs lodestone doctor --json with getenv and returns its exit code and decoded report.
func doctorJSON(t *testing.T, getenv func(string) string, args ...string) (int, map[string]any, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"doctor", "--json"}, args...), &out, &errb, getenv)
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("doctor --json: not JSON (%v): %q\nstderr: %s", err, out.String(), errb.String())
	}
	checkDoctorShape(t, rep)
	return code, rep, errb.String()
}

// The --json keys are a contract: they may grow, never change. This golden list fails a rename or removal.
var (
	doctorTopKeys     = []string{"checks", "summary"}
	doctorSummaryKeys = []string{"error", "not_checked", "ok", "overall", "warn"}
	doctorCheckKeys   = []string{"details", "message", "name", "status"}
	doctorCheckNames  = []string{"configuration", "data_dir", "database", "migrations", "disk", "blob_store",
		"fuota_certificate", "oidc_issuer", "otlp_tokens", "clock_skew", "replicas", "backup", "retention", "audit_log"}
)

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func checkDoctorShape(t *testing.T, rep map[string]any) {
	t.Helper()
	if got := keys(rep); !slices.Equal(got, doctorTopKeys) {
		t.Fatalf("report keys %v, want %v", got, doctorTopKeys)
	}
	sum, _ := rep["summary"].(map[string]any)
	if got := keys(sum); !slices.Equal(got, doctorSummaryKeys) {
		t.Fatalf("summary keys %v, want %v", got, doctorSummaryKeys)
	}
	checks, _ := rep["checks"].([]any)
	var names []string
	for _, c := range checks {
		m := c.(map[string]any)
		if got := keys(m); !slices.Equal(got, doctorCheckKeys) {
			t.Fatalf("check keys %v, want %v", got, doctorCheckKeys)
		}
		if _, ok := m["details"].(map[string]any); !ok {
			t.Fatalf("check %v: details is not an object", m["name"])
		}
		if !slices.Contains([]string{"ok", "warn", "error", "not_checked"}, m["status"].(string)) {
			t.Fatalf("check %v: status %v", m["name"], m["status"])
		}
		names = append(names, m["name"].(string))
	}
	if !slices.Equal(names, doctorCheckNames) {
		t.Fatalf("checks %v, want in order %v", names, doctorCheckNames)
	}
}

func check(t *testing.T, rep map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range rep["checks"].([]any) {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no check %q", name)
	return nil
}

func wantStatus(t *testing.T, rep map[string]any, name, status, inMessage string) {
	t.Helper()
	c := check(t, rep, name)
	if c["status"] != status || !strings.Contains(c["message"].(string), inMessage) {
		t.Fatalf("check %s = %v %q, want %s mentioning %q", name, c["status"], c["message"], status, inMessage)
	}
}

func TestDoctorFreshDataDir(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "not-yet")} {
		code, rep, stderr := doctorJSON(t, cliEnv, "--data-dir", dir)
		if code != 0 {
			t.Fatalf("exit %d on a fresh data dir: %v %s", code, rep, stderr)
		}
		if o := rep["summary"].(map[string]any)["overall"]; o != "ok" && o != "warn" {
			t.Fatalf("overall %v", o)
		}
		wantStatus(t, rep, "fuota_certificate", "not_checked", "FUOTA")
	}
}

func TestDoctorUnwritableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep, stderr := doctorJSON(t, cliEnv, "--data-dir", filepath.Join(file, "data"))
	if code == 0 || !strings.Contains(stderr, "failed") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	wantStatus(t, rep, "data_dir", "error", "not a directory")
	if rep["summary"].(map[string]any)["overall"] != "error" {
		t.Fatal(rep["summary"])
	}
}

func TestDoctorPostgresDown(t *testing.T) {
	code, rep, _ := doctorJSON(t, cliEnv, "--data-dir", t.TempDir(), "--db",
		"postgres://postgres@127.0.0.1:1/lodestone?sslmode=disable&connect_timeout=2")
	if code == 0 {
		t.Fatal("exit 0 with the database down")
	}
	wantStatus(t, rep, "database", "error", "cannot be opened")
	wantStatus(t, rep, "migrations", "not_checked", "")
}

func writeCert(t *testing.T, path string, notBefore, notAfter time.Time) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject: pkix.Name{CommonName: "expired"}, NotBefore: notBefore, NotAfter: notAfter}, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "expired"}, NotBefore: notBefore,
		NotAfter: notAfter}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDoctorFUOTACertificate(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	env := func(k string) string {
		switch k {
		case "US_AUTH_USERNAME":
			return "fuota"
		case "US_AUTH_PASSWORD":
			return "a-long-fuota-password"
		case "FUOTA_TLS_CERT":
			return cert
		case "FUOTA_TLS_KEY":
			return filepath.Join(dir, "key.pem")
		}
		return cliEnv(k)
	}
	writeCert(t, cert, time.Now().AddDate(-1, 0, 0), time.Now().AddDate(0, 0, -3))
	code, rep, _ := doctorJSON(t, env, "--data-dir", dir)
	if code == 0 {
		t.Fatal("exit 0 with an expired certificate")
	}
	wantStatus(t, rep, "fuota_certificate", "error", "expired")

	writeCert(t, cert, time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 10))
	code, rep, _ = doctorJSON(t, env, "--data-dir", dir)
	wantStatus(t, rep, "fuota_certificate", "warn", "expires in")
	if code != 0 {
		t.Fatalf("a warning exited %d", code)
	}
}

func TestDoctorConfigWeakSecrets(t *testing.T) {
	env := func(k string) string {
		switch k {
		case "BASIC_AUTH_PASS":
			return "admin"
		case "INGEST_API_KEY":
			return "short"
		}
		return ""
	}
	code, rep, _ := doctorJSON(t, env, "--data-dir", t.TempDir(), "--elf-dir", "/x")
	if code == 0 {
		t.Fatal("exit 0 with a default-like admin password")
	}
	msg := check(t, rep, "configuration")["message"].(string)
	for _, want := range []string{"BASIC_AUTH_PASS", "INGEST_API_KEY", "--elf-dir"} {
		if !strings.Contains(msg, want) {
			t.Errorf("configuration message %q does not name %s", msg, want)
		}
	}
	if strings.Contains(msg, "short\"") || strings.Contains(msg, "=admin") {
		t.Errorf("a secret leaked into %q", msg)
	}
}

// TestDoctorServer runs doctor against a live server's database file and over HTTP, on both backends.
func TestDoctorServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T, dir string) string
	}{
		{"sqlite", func(t *testing.T, dir string) string { return filepath.Join(dir, "lodestone.db") }},
		{"postgres", func(t *testing.T, dir string) string { return pgtest.URL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := tc.db(t, dir)
			url, _ := serveInProcess(t, dir, "--db", db)
			postSession(t, url, fleetSession("doc-1", 1))

			code, rep, stderr := doctorJSON(t, cliEnv, "--server", url)
			if code != 0 {
				t.Fatalf("--server: exit %d: %v %s", code, rep, stderr)
			}
			wantStatus(t, rep, "database", "ok", "answers")
			wantStatus(t, rep, "migrations", "ok", "latest")
			wantStatus(t, rep, "blob_store", "ok", "probe")
			wantStatus(t, rep, "backup", "warn", "no backup")

			// A backup through the API is recorded, and the next report sees it.
			resp, err := http.Get(strings.Replace(url, "http://", "http://admin:"+cliPass+"@", 1) + "/admin/backup")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_, rep, _ = doctorJSON(t, cliEnv, "--server", url)
			wantStatus(t, rep, "backup", "ok", "last backup")
			if tc.name == "postgres" {
				wantStatus(t, rep, "replicas", "ok", "1 replica")
				wantStatus(t, rep, "clock_skew", "ok", "clock within")
			}

			// The local run reads the same database while the server runs.
			code, rep, stderr = doctorJSON(t, cliEnv, "--data-dir", dir, "--db", db)
			if code != 0 {
				t.Fatalf("local: exit %d: %v %s", code, rep, stderr)
			}
			wantStatus(t, rep, "migrations", "ok", "latest")
			wantStatus(t, rep, "backup", "ok", "last backup")

			// Wrong credentials: 401; the route is admin-only.
			var out, errb bytes.Buffer
			bad := func(k string) string {
				if k == "BASIC_AUTH_PASS" {
					return "wrong-password"
				}
				return ""
			}
			if code := run(context.Background(), []string{"doctor", "--server", url}, &out, &errb, bad); code == 0 ||
				!strings.Contains(errb.String(), "401") {
				t.Fatalf("wrong password: exit %d, %s", code, errb.String())
			}
		})
	}
}

// TestDoctorDatabaseNewerThanBinary: a database a newer lodestone migrated is an error, not "up to date".
func TestDoctorDatabaseNewerThanBinary(t *testing.T) {
	dir := t.TempDir()
	_, stop := serveInProcess(t, dir)
	stop()
	db, err := sql.Open("sqlite3", filepath.Join(dir, "lodestone.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, rep, _ := doctorJSON(t, cliEnv, "--data-dir", dir)
	if code == 0 {
		t.Fatal("exit 0 on a database newer than the binary")
	}
	wantStatus(t, rep, "migrations", "error", "newer than this binary")
}

// TestDoctorText: one line per check, no colour when stdout is not a terminal, and 'lodestone help' lists it.
func TestDoctorText(t *testing.T) {
	out, _ := runCLI(t, "doctor", "--data-dir", t.TempDir())
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("colour on a pipe: %q", out)
	}
	for _, name := range doctorCheckNames {
		if !strings.Contains(out, " "+name+" ") {
			t.Errorf("no line for %s:\n%s", name, out)
		}
	}
	help, _ := runCLI(t, "help")
	if !strings.Contains(help, "doctor") {
		t.Error("lodestone help does not list doctor")
	}
	usage, _ := runCLI(t, "help", "doctor")
	if !strings.Contains(usage, "--server") {
		t.Errorf("help doctor: %q", usage)
	}
}

// TestDoctorSeesLocalBackup: 'lodestone backup' of the local database is recorded too, on both backends.
func TestDoctorSeesLocalBackup(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T, dir string) string
	}{
		{"sqlite", func(t *testing.T, dir string) string { return filepath.Join(dir, "lodestone.db") }},
		{"postgres", func(t *testing.T, dir string) string { return pgtest.URL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := tc.db(t, dir)
			_, stop := serveInProcess(t, dir, "--db", db)
			stop()
			_, rep, _ := doctorJSON(t, cliEnv, "--data-dir", dir, "--db", db)
			wantStatus(t, rep, "backup", "warn", "no backup")
			runCLI(t, "backup", filepath.Join(t.TempDir(), "b.db"), "--data-dir", dir, "--db", db, "--json")
			_, rep, _ = doctorJSON(t, cliEnv, "--data-dir", dir, "--db", db)
			wantStatus(t, rep, "backup", "ok", "last backup")
		})
	}
}

func TestDoctorOTLPTokenFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tokens.toml")
	if err := os.WriteFile(bad, []byte("this is = not [ toml"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rep, _ := doctorJSON(t, cliEnv, "--data-dir", dir, "--tokens-config", bad)
	if code == 0 {
		t.Fatal("exit 0 with a broken token file")
	}
	wantStatus(t, rep, "otlp_tokens", "error", "does not load")
}
