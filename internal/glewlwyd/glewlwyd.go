// Package glewlwyd starts Debian's glewlwyd, a real OpenID provider, for tests on loopback: the API's bearer
// token tests and the console's sign-in in a browser use the same provider.
package glewlwyd

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver" // glewlwyd's database is created here
)

// glewlwyd is a real OpenID provider (Debian's glewlwyd, SQLite backend) started for one test on loopback.
type Provider struct {
	t    testing.TB
	Base string // http://127.0.0.1:PORT
	hc   *http.Client
}

// glewlwydSchema is the SQLite schema and seed data Debian ships with the package (admin/password).
const glewlwydSchema = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3"

func Start(t testing.TB) *Provider {
	t.Helper()
	bin, err := exec.LookPath("glewlwyd")
	if err != nil {
		if os.Getenv("LODESTONE_REQUIRE_GLEWLWYD") == "1" {
			t.Fatal("glewlwyd is required (LODESTONE_REQUIRE_GLEWLWYD=1) but not installed: apt-get install glewlwyd")
		}
		t.Skip("glewlwyd not installed (apt-get install glewlwyd); CI sets LODESTONE_REQUIRE_GLEWLWYD=1")
	}
	schema, err := os.ReadFile(glewlwydSchema)
	if err != nil {
		t.Fatalf("glewlwyd's schema: %v", err)
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "glewlwyd.db")
	db, err := sql.Open("sqlite3", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(schema)); err != nil {
		t.Fatalf("create glewlwyd database: %v", err)
	}
	// The user backend stores a "role" property, which the OIDC plugin copies into tokens.
	if _, err := db.Exec(`UPDATE g_user_module_instance SET gumi_parameters = ? WHERE gumi_name = 'database'`,
		`{"use-glewlwyd-connection":true,"data-format":{"role":{"multiple":true,"read":true,"write":true,`+
			`"profile-read":true,"profile-write":false}}}`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// use_secure_connection is left out: glewlwyd 2.7.5 refuses to start when it is present without certificates,
	// even set to false.
	conf := fmt.Sprintf(`port=%d
bind_address="127.0.0.1"
external_url="%s"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="console"
log_level="WARNING"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
plugin_api_run_enabled=""
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3" path = "%s" };
`, port, base, dbPath)
	confPath := filepath.Join(dir, "glewlwyd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "glewlwyd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start glewlwyd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("glewlwyd log:\n%s", out)
		}
	})

	jar, _ := cookiejar.New(nil)
	g := &Provider{t: t, Base: base, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	// Sign in as glewlwyd's seeded administrator once it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := g.Call("POST", "/api/auth/", map[string]any{"username": "admin", "password": "password"})
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("glewlwyd did not accept its admin within 30 s (last status %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return g
}

// call sends a JSON admin API request with the session cookie.
func (g *Provider) Call(method, path string, body any) (int, string) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, g.Base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (g *Provider) Must(method, path string, body any) {
	g.t.Helper()
	if status, out := g.Call(method, path, body); status != 200 {
		g.t.Fatalf("glewlwyd %s %s: %d %s", method, path, status, out)
	}
}

// issuer is the OIDC plugin's issuer URL.
func (g *Provider) Issuer() string { return g.Base + "/api/oidc" }

// setupOIDC adds the OpenID Connect plugin with a fresh RSA key, a confidential client allowed the password
// grant, and users with roles.
func (g *Provider) SetupOIDC(clientID, secret string, redirectURIs []string, users map[string]string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		g.t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	g.Must("POST", "/api/mod/plugin/", map[string]any{"module": "oidc", "name": "oidc", "display_name": "oidc",
		"parameters": map[string]any{
			"iss": g.Issuer(), "jwt-type": "rsa", "jwt-key-size": "256",
			"key":                   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
			"cert":                  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
			"access-token-duration": 3600, "refresh-token-duration": 1209600, "code-duration": 600,
			"refresh-token-rolling": true, "allow-non-oidc": true, "auth-type-code-enabled": true,
			"auth-type-password-enabled": true, "auth-type-refresh-enabled": true, "pkce-allowed": true, "pkce-required": true,
			"additional-parameters": []map[string]any{
				{"user-parameter": "role", "token-parameter": "roles"},
				{"user-parameter": "username", "token-parameter": "preferred_username"},
			},
			"claims": []map[string]any{
				{"name": "roles", "user-property": "role", "type": "string", "mandatory": true, "on-demand": false},
				{"name": "preferred_username", "user-property": "username", "type": "string", "mandatory": true,
					"on-demand": false},
			},
		}})
	g.Must("POST", "/api/client/", map[string]any{"client_id": clientID, "name": clientID, "enabled": true,
		"confidential": true, "client_secret": secret, "token_endpoint_auth_method": []string{"client_secret_basic"},
		"scope": []string{"openid"}, "redirect_uri": append([]string{"http://127.0.0.1/cb"}, redirectURIs...),
		"authorization_type": []string{"password", "code", "refresh_token"}})
	for name, role := range users {
		u := map[string]any{"username": name, "password": name + "-password", "name": name, "email": "",
			"enabled": true, "scope": []string{"openid", "g_profile"}}
		if role != "" {
			u["role"] = []string{role}
		}
		g.Must("POST", "/api/user/", u)
	}
}

// login runs the resource owner password grant and returns the access and ID tokens.
func (g *Provider) Login(clientID, secret, user string) (access, id string) {
	g.t.Helper()
	form := url.Values{"grant_type": {"password"}, "scope": {"openid"}, "username": {user},
		"password": {user + "-password"}}
	req, _ := http.NewRequest("POST", g.Base+"/api/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Access string `json:"access_token"`
		ID     string `json:"id_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil || out.Access == "" {
		g.t.Fatalf("glewlwyd token for %s: %d %s", user, resp.StatusCode, raw)
	}
	return out.Access, out.ID
}
