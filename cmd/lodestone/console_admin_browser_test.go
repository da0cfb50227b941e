package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleAdminInBrowser drives the real binary's administration pages in chromium: an API token created in
// the console, copied from the page and used once against the API, then revoked and refused; an OTLP token and a
// device key created and revoked; a user created, promoted, disabled (sign-in refused, session ended), enabled and
// given a generated password; retention purged and a backup downloaded; a provisioner who cannot reach any of it
// (no link, 403 on the pages and on forged posts); and the audit log showing these actions, filtered. No page
// reports an error or a CSP violation, and each passes the accessibility checks.
func TestConsoleAdminInBrowser(t *testing.T) {
	chromiumPath(t)
	bin := buildBinary(t)
	const pass = "console-admin-pass"
	p := start(t, bin, t.TempDir(), "BASIC_AUTH_PASS="+pass, "BASIC_AUTH_USERS=pat:prov-pass-1:provisioner",
		"ALERT_WEBHOOK_URL=http://127.0.0.1:9/hooks/secret-path", "RETENTION_DAYS=30")
	base := "http://" + p.addr
	b := newBrowser(t, base)
	b.signIn("admin", pass)
	start := time.Now().UTC().Add(-time.Minute)

	b.do(chromedp.Click(chromedp.CSS(`header.top a[href="/ui/admin"]`)), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.accessible("/ui/admin")
	b.screenshot("admin")

	t.Run("API token: created, copied, used once, revoked", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin/tokens")
		b.do(chromedp.SendKeys(chromedp.ID("token-name"), "ci-bot"), chromedp.SetValue(chromedp.ID("token-role"), "viewer"),
			chromedp.Submit(chromedp.ID("token-name")), chromedp.WaitVisible(chromedp.ID("secret")))
		b.accessible("token secret")
		secret := strings.TrimSpace(b.text("#secret"))
		if !strings.HasPrefix(secret, "lst_") || len(secret) < 30 {
			t.Fatalf("the page shows %q as the new token", secret)
		}
		b.do(chromedp.Click(chromedp.CSS("button[data-copy]")))
		b.waitJS("the copy button's answer", "document.querySelector('.copy-state').textContent !== ''", 5*time.Second)
		if state := b.text(".copy-state"); !strings.Contains(state, "Copied") && !strings.Contains(state, "selected") {
			t.Errorf("copy state %q", state)
		}
		b.screenshot("admin-secret")

		if code, body := admAPI(t, "GET", base+"/auth/me", secret); code != 200 || !strings.Contains(body, `"role":"viewer"`) {
			t.Fatalf("the new token on the API: %d %s", code, body)
		}
		// A viewer token may read but not administer.
		if code, _ := admAPI(t, "GET", base+"/admin/tokens", secret); code != 403 {
			t.Fatalf("a viewer token on /admin/tokens: %d, want 403", code)
		}

		b.do(chromedp.Click(chromedp.CSS("main a.button")), chromedp.WaitVisible(chromedp.ID("api-tokens")))
		if row := b.text("#api-tokens tbody"); !strings.Contains(row, "ci-bot") || !strings.Contains(row, secret[:8]) ||
			strings.Contains(row, secret) {
			t.Fatalf("token list %q: want ci-bot by its first characters only", row)
		}
		b.screenshot("admin-tokens")
		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Click(chromedp.CSS(`#api-tokens button[aria-label="Revoke API token ci-bot"]`)),
			chromedp.WaitVisible(chromedp.CSS(".flash")))
		if f := b.text(".flash"); !strings.Contains(f, "Revoked") {
			t.Fatalf("flash after revoking: %q", f)
		}
		if row := b.text("#api-tokens tbody"); !strings.Contains(row, "revoked") {
			t.Fatalf("token list after revoking: %q", row)
		}
		if code, body := admAPI(t, "GET", base+"/auth/me", secret); code != 401 {
			t.Fatalf("the revoked token on the API: %d %s, want 401", code, body)
		}
		b.clean("tokens")
	})

	t.Run("OTLP token and device key: created and revoked", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin/tokens")
		b.do(chromedp.SendKeys(chromedp.ID("otlp-name"), "edge-logs"), chromedp.SendKeys(chromedp.ID("otlp-project"), "edge"),
			chromedp.Submit(chromedp.ID("otlp-name")), chromedp.WaitVisible(chromedp.ID("secret")))
		if s := b.text("#secret"); !strings.HasPrefix(s, "ldt_") {
			t.Fatalf("OTLP secret %q", s)
		}
		b.open("/ui/admin/tokens")
		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Click(chromedp.CSS(`#otlp-tokens button[aria-label="Revoke OTLP token edge-logs"]`)),
			chromedp.WaitVisible(chromedp.CSS(".flash")))
		if row := b.text("#otlp-tokens tbody"); !strings.Contains(row, "edge/") || !strings.Contains(row, "revoked") {
			t.Fatalf("OTLP tokens after revoking: %q", row)
		}

		b.open("/ui/admin/keys")
		b.do(chromedp.SendKeys(chromedp.ID("new-key-device"), "sensor-7"), chromedp.SendKeys(chromedp.ID("new-key-name"), "factory"),
			chromedp.Submit(chromedp.ID("new-key-device")), chromedp.WaitVisible(chromedp.ID("secret")))
		if s := b.text("#secret"); !strings.HasPrefix(s, "lsd_") {
			t.Fatalf("device key %q", s)
		}
		b.open("/ui/admin/keys?device=sensor-7")
		if row := b.text("#device-keys tbody"); !strings.Contains(row, "sensor-7") || !strings.Contains(row, "active") {
			t.Fatalf("device keys: %q", row)
		}
		b.screenshot("admin-keys")
		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Click(chromedp.CSS(`#device-keys button[aria-label="Revoke key factory of sensor-7"]`)),
			chromedp.WaitVisible(chromedp.CSS(".flash")))
		if row := b.text("#device-keys tbody"); !strings.Contains(row, "revoked") {
			t.Fatalf("device keys after revoking: %q", row)
		}
		b.clean("keys")
	})

	t.Run("user: created, role changed, disabled, enabled, password reset", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin/users")
		admClearFlash(b)
		b.do(chromedp.SendKeys(chromedp.ID("user-name"), "olga"), chromedp.SetValue(chromedp.ID("user-role"), "viewer"),
			chromedp.SendKeys(chromedp.ID("user-password"), "olga-pass-1"), chromedp.Submit(chromedp.ID("user-name")),
			chromedp.WaitVisible(chromedp.CSS(".flash")))
		if row := b.text("#user-olga"); !strings.Contains(row, "viewer") || !strings.Contains(row, "active") {
			t.Fatalf("olga's row: %q", row)
		}
		olga, _ := admSignIn(t, base, "olga", "olga-pass-1", http.StatusSeeOther)
		if code, page := admGet(t, olga, base+"/ui/"); code != 200 || strings.Contains(page, `href="/ui/admin"`) {
			t.Fatalf("olga (viewer) on the overview: %d, admin link shown: %v", code, strings.Contains(page, `href="/ui/admin"`))
		}

		admClearFlash(b)
		b.do(chromedp.SetValue(chromedp.ID("role-olga"), "provisioner"),
			chromedp.Submit(chromedp.ID("role-olga")), chromedp.WaitVisible(chromedp.CSS(".flash")))
		if f := b.text(".flash"); !strings.Contains(f, "olga is now provisioner") {
			t.Fatalf("flash after the role change: %q", f)
		}
		// The new role applies to her session at once: a provisioner sees the registration form.
		if _, page := admGet(t, olga, base+"/ui/devices"); !strings.Contains(page, `id="register-one"`) {
			t.Fatal("olga's session did not take the provisioner role")
		}
		b.screenshot("admin-users")

		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Submit(chromedp.CSS(`form[action="/ui/admin/users/olga/disable"]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
		if row := b.text("#user-olga"); !strings.Contains(row, "disabled") {
			t.Fatalf("olga's row after disabling: %q", row)
		}
		if code, _ := admGet(t, olga, base+"/ui/devices"); code != http.StatusSeeOther {
			t.Fatalf("olga's session after she was disabled: %d, want a redirect to sign in", code)
		}
		if _, page := admSignIn(t, base, "olga", "olga-pass-1", http.StatusUnauthorized); !strings.Contains(page, "This account is disabled") {
			t.Fatalf("the refused sign-in does not say the account is disabled:\n%s", page)
		}
		if code, body := admAPIBasic(t, base+"/auth/me", "olga", "olga-pass-1"); code != 401 {
			t.Fatalf("a disabled user on the API: %d %s", code, body)
		}

		admClearFlash(b)
		b.do(chromedp.Submit(chromedp.CSS(`form[action="/ui/admin/users/olga/enable"]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
		admSignIn(t, base, "olga", "olga-pass-1", http.StatusSeeOther)
		// An empty password field generates one, shown once.
		b.do(chromedp.Submit(chromedp.CSS(`form[action="/ui/admin/users/olga/password"]`)), chromedp.WaitVisible(chromedp.ID("secret")))
		newPass := strings.TrimSpace(b.text("#secret"))
		if len(newPass) < 16 {
			t.Fatalf("generated password %q", newPass)
		}
		admSignIn(t, base, "olga", "olga-pass-1", http.StatusUnauthorized)
		admSignIn(t, base, "olga", newPass, http.StatusSeeOther)
		b.clean("users")
	})

	t.Run("provisioner cannot reach administration", func(t *testing.T) {
		b.t = t
		pat, _ := admSignIn(t, base, "pat", "prov-pass-1", http.StatusSeeOther)
		code, page := admGet(t, pat, base+"/ui/")
		if code != 200 || strings.Contains(page, `href="/ui/admin"`) {
			t.Fatalf("pat's overview: %d, admin link shown: %v", code, strings.Contains(page, `href="/ui/admin"`))
		}
		csrf := admCSRF(t, page)
		for _, path := range []string{"/ui/admin", "/ui/admin/users", "/ui/admin/tokens", "/ui/admin/keys",
			"/ui/admin/alerts", "/ui/admin/retention", "/ui/admin/backup", "/ui/admin/audit", "/ui/admin/doctor"} {
			if code, _ := admGet(t, pat, base+path); code != http.StatusForbidden {
				t.Errorf("provisioner GET %s: %d, want 403", path, code)
			}
		}
		forged := map[string]url.Values{
			"/ui/admin/tokens":          {"name": {"pwned"}, "role": {"admin"}},
			"/ui/admin/users":           {"name": {"mallory"}, "role": {"admin"}, "password": {"mallory-pass"}},
			"/ui/admin/users/olga/role": {"role": {"viewer"}},
			"/ui/admin/backup":          {},
			"/ui/admin/retention":       {},
		}
		for path, form := range forged {
			form.Set("csrf", csrf)
			if code := admPost(t, pat, base+path, form); code != http.StatusForbidden {
				t.Errorf("provisioner POST %s with a valid form token: %d, want 403", path, code)
			}
		}
		if code, body := admAPIBasic(t, base+"/admin/users", "admin", pass); code != 200 ||
			strings.Contains(body, "mallory") || !strings.Contains(body, `"name":"olga","role":"provisioner"`) {
			t.Fatalf("after the forged posts: %d %s", code, body)
		}
		if code, body := admAPIBasic(t, base+"/admin/tokens", "admin", pass); code != 200 || strings.Contains(body, "pwned") {
			t.Fatalf("a forged post created a token: %s", body)
		}
		// A provisioner manages device keys on the device page, as in the API.
		if code := admPost(t, pat, base+"/ui/devices/sensor-8/keys", url.Values{"csrf": {csrf}, "name": {"bench"}}); code != http.StatusCreated {
			t.Errorf("provisioner creating a device key: %d, want 201", code)
		}
	})

	t.Run("retention, alerts and backup", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin/alerts")
		if hooks := b.text("#webhooks"); !strings.Contains(hooks, "http://127.0.0.1:9/") || strings.Contains(hooks, "secret-path") {
			t.Fatalf("webhooks shown as %q: want the scheme and host only", hooks)
		}
		b.screenshot("admin-alerts")
		b.open("/ui/admin/retention")
		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Submit(chromedp.ID("purge")), chromedp.WaitVisible(chromedp.CSS(".flash")))
		if f := b.text(".flash"); !strings.Contains(f, "Purged") {
			t.Fatalf("flash after purging: %q", f)
		}
		if !b.has("#last-run") || !strings.Contains(b.text("#retention-settings"), "30 days") {
			t.Fatal("the retention page shows no last run or not the configured 30 days")
		}
		b.screenshot("admin-retention")
		b.open("/ui/admin/backup")
		b.screenshot("admin-backup")
		b.open("/ui/admin/doctor")
		if s := b.text("#doctor-summary"); !strings.Contains(s, "Overall") || !strings.Contains(b.text("#doctor tbody"), "database") {
			t.Errorf("doctor page: %q", s)
		}
		b.screenshot("admin-doctor")
		// The download is the form's post with the session's cookie and token; chromium would save it to disk.
		jar, _ := cookiejar.New(nil)
		u, _ := url.Parse(base + "/ui/")
		jar.SetCookies(u, []*http.Cookie{{Name: "lodestone_session", Value: b.cookie("lodestone_session")}})
		c := &http.Client{Jar: jar, Timeout: time.Minute}
		csrf := eval[string](b, "document.querySelector('input[name=csrf]').value")
		resp, err := c.PostForm(base+"/ui/admin/backup", url.Values{"csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-sqlite3" ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || !bytes.HasPrefix(raw, []byte("SQLite format 3\x00")) {
			t.Fatalf("backup download: %d %s %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"),
				resp.Header.Get("Content-Disposition"), len(raw))
		}
		b.clean("retention and backup")
	})

	t.Run("audit log shows what was done, filtered", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin/audit")
		b.do(chromedp.SendKeys(chromedp.ID("actor"), "admin"), chromedp.SendKeys(chromedp.ID("action"), "token.*"),
			chromedp.Submit(chromedp.ID("actor")))
		// The table is already on the unfiltered page: wait for the filtered one to replace it.
		b.waitJS("the filtered audit page", `location.search.includes("action=token") && document.readyState === "complete"`, 30*time.Second)
		b.do(chromedp.WaitVisible(chromedp.ID("audit")))
		rows := b.text("#audit tbody")
		for _, want := range []string{"token.create", "token.revoke", "console"} {
			if !strings.Contains(rows, want) {
				t.Errorf("audit filtered by admin and token.*: no %q in\n%s", want, rows)
			}
		}
		if strings.Contains(rows, "user.") || strings.Contains(rows, "backup.") {
			t.Errorf("the token.* filter let other actions through:\n%s", rows)
		}
		b.screenshot("admin-audit")
		b.open("/ui/admin/audit?action=user.*&target_kind=user&since=" + url.QueryEscape(start.Format("2006-01-02T15:04")))
		rows = b.text("#audit tbody")
		for _, want := range []string{"user.create", "user.update", "olga"} {
			if !strings.Contains(rows, want) {
				t.Errorf("audit of users since the test began: no %q in\n%s", want, rows)
			}
		}
		b.open("/ui/admin/audit?action=backup.download")
		if rows := b.text("#audit tbody"); !strings.Contains(rows, "admin") || !strings.Contains(rows, "console") {
			t.Errorf("the backup download is not in the audit log as admin's, through the console:\n%s", rows)
		}
		future := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04")
		b.open("/ui/admin/audit?since=" + url.QueryEscape(future))
		if b.has("#audit") || !strings.Contains(b.text("main"), "No entry matches") {
			t.Error("a filter in the future still lists entries")
		}
		b.clean("audit")
	})
}

// admClearFlash removes the page's flash message, so that waiting for the next one waits for the next page.
func admClearFlash(b *browser) {
	eval[bool](b, "(document.querySelectorAll('.flash').forEach(e => e.remove()), true)")
}

// admConfirm answers the page's confirmation step yes (window.confirm blocks a headless browser).
func admConfirm(b *browser) { eval[bool](b, "(window.confirm = () => true, true)") }

var admNoRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// admSignIn signs in through the console's form with a fresh cookie jar, as a second browser would, and checks the
// answer's status (303 on success); it returns the client holding the session and the answer's body.
func admSignIn(t *testing.T, base, user, pass string, want int) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: admNoRedirect, Timeout: 10 * time.Second}
	code, page := admGet(t, c, base+"/ui/login")
	if code != 200 {
		t.Fatalf("login page: %d", code)
	}
	form := url.Values{"username": {user}, "password": {pass}, "csrf": {admCSRF(t, page)}, "next": {"/ui/"}}
	resp, err := c.PostForm(base+"/ui/login", form)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("sign-in of %s: %d, want %d: %s", user, resp.StatusCode, want, raw)
	}
	return c, string(raw)
}

var admCSRFField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func admCSRF(t *testing.T, page string) string {
	t.Helper()
	m := admCSRFField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form token in the page:\n%.500s", page)
	}
	return m[1]
}

func admGet(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func admPost(t *testing.T, c *http.Client, u string, form url.Values) int {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// admAPI calls the HTTP API with a bearer token.
func admAPI(t *testing.T, method, u, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return admDo(t, req)
}

func admAPIBasic(t *testing.T, u, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.SetBasicAuth(user, pass)
	return admDo(t, req)
}

func admDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if json.Unmarshal(raw, &v) != nil && resp.StatusCode < 300 {
		t.Fatalf("%s %s: not JSON: %s", req.Method, req.URL, raw)
	}
	return resp.StatusCode, string(raw)
}
