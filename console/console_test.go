package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// env is the console mounted in the real HTTP API over a real SQLite store, with a clock the test moves.
type env struct {
	t   *testing.T
	srv *httptest.Server
	con *Console
	db  *sqlite.DB

	mu  sync.Mutex
	now time.Time
}

func newEnv(t *testing.T, tls bool) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
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
	e := &env{t: t, db: db, now: time.Now()}
	var api *httpapi.Server
	e.con, err = New(Config{Logger: log, Devices: db, Registry: db, Groups: db, Telemetry: db, Crashes: db,
		Series: db, Counts: db, Membership: db, Targets: db, Credentials: db, Sessions: db, IdleTimeout: time.Hour, MaxAge: 4 * time.Hour,
		SignIn: func(w http.ResponseWriter, r *http.Request, user, pass string) (*lodestone.Principal, error) {
			return api.SignIn(w, r, user, pass)
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.con.now = func() time.Time {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.now
	}
	w := ingest.NewWriter(db, ingest.WriterConfig{}, log)
	api = httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log), Devices: db,
		Telemetry: db, Auth: authn, Logger: log, Credentials: db, Console: e.con})
	if tls {
		e.srv = httptest.NewTLSServer(api.Handler())
	} else {
		e.srv = httptest.NewServer(api.Handler())
	}
	t.Cleanup(func() {
		e.srv.Close()
		authn.Close()
		w.Close()
		db.Close()
	})
	return e
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// client is a browser-like client: cookies, no redirects followed.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: e.srv.Client().Transport, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type resp struct {
	status int
	loc    string
	body   string
	header http.Header
}

func (e *env) get(c *http.Client, path string) resp {
	e.t.Helper()
	r, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header.Get("Location"), string(b), r.Header}
}

func (e *env) post(c *http.Client, path string, form url.Values) resp {
	e.t.Helper()
	r, err := c.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header.Get("Location"), string(b), r.Header}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// signIn signs in through the form and returns the session's CSRF token.
func (e *env) signIn(c *http.Client, user, pass string) string {
	e.t.Helper()
	tok := csrfOf(e.t, e.get(c, "/ui/login").body)
	r := e.post(c, "/ui/login", url.Values{"csrf": {tok}, "username": {user}, "password": {pass},
		"next": {"/ui/devices?status=online"}})
	if r.status != http.StatusSeeOther || r.loc != "/ui/devices?status=online" {
		e.t.Fatalf("sign-in as %s: %d to %q: %s", user, r.status, r.loc, r.body)
	}
	return csrfOf(e.t, e.get(c, "/ui/").body)
}

func TestSignInSessionCookieAndHeaders(t *testing.T) {
	e := newEnv(t, true)
	c := e.client()
	if r := e.get(c, "/ui/devices?q=x"); r.status != http.StatusSeeOther || r.loc != "/ui/login?next=%2Fui%2Fdevices%3Fq%3Dx" {
		t.Fatalf("signed out: %d %q", r.status, r.loc)
	}
	// A wrong password is a 401 page naming no detail; the form keeps the user name.
	tok := csrfOf(t, e.get(c, "/ui/login").body)
	r := e.post(c, "/ui/login", url.Values{"csrf": {tok}, "username": {"admin"}, "password": {"wrong"}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong user name or password") {
		t.Fatalf("wrong password: %d %s", r.status, r.body)
	}
	// Without the pre-session cookie's token the form is refused (login CSRF).
	if r := e.post(e.client(), "/ui/login", url.Values{"csrf": {tok}, "username": {"admin"},
		"password": {"admin-pass"}}); r.status != http.StatusForbidden {
		t.Fatalf("login without its cookie: %d", r.status)
	}
	tok = csrfOf(t, e.get(c, "/ui/login").body)
	raw, err := c.PostForm(e.srv.URL+"/ui/login", url.Values{"csrf": {tok}, "username": {"admin"},
		"password": {"admin-pass"}, "next": {"//evil.example/x"}})
	if err != nil {
		t.Fatal(err)
	}
	raw.Body.Close()
	if loc := raw.Header.Get("Location"); loc != "/ui/" {
		t.Errorf("next=//evil.example led to %q", loc)
	}
	var sess *http.Cookie
	for _, ck := range raw.Cookies() {
		if ck.Name == sessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/ui/" {
		t.Fatalf("session cookie %+v", sess)
	}
	// Only the hash is stored.
	if _, err := e.db.FindSession(context.Background(), sess.Value); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("the cookie's secret is a stored key: %v", err)
	}
	if _, err := e.db.FindSession(context.Background(), hashSecret(sess.Value)); err != nil {
		t.Fatalf("the session's hash is not stored: %v", err)
	}
	page := e.get(c, "/ui/")
	if page.status != 200 || !strings.Contains(page.body, "Overview") {
		t.Fatalf("overview: %d %s", page.status, page.body)
	}
	csp := page.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(page.body, " style=") || strings.Contains(page.body, "<script>") || strings.Contains(page.body, " on") &&
		regexp.MustCompile(` on[a-z]+=`).MatchString(page.body) {
		t.Error("a page carries inline script or style, which the CSP blocks")
	}
	// API clients keep their 404 at /; browsers go to the console.
	req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if r, _ := c.Do(req); r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/ui/" {
		t.Errorf("browser at /: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := e.get(e.srv.Client(), "/"); r.status != http.StatusNotFound || !strings.Contains(r.body, `"code":"not_found"`) {
		t.Errorf("API client at /: %d %s", r.status, r.body)
	}
}

func TestSessionTimeoutsAndLogout(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	e.signIn(c, "admin", "admin-pass")
	// Used every 50 minutes, the session outlives its idle timeout (1 h) but not its absolute one (4 h).
	for i := 0; i < 4; i++ {
		e.advance(50 * time.Minute)
		if r := e.get(c, "/ui/fleet"); r.status != 200 {
			t.Fatalf("after %d×50 min: %d", i+1, r.status)
		}
	}
	e.advance(50 * time.Minute) // 4 h 10 min after sign-in
	if r := e.get(c, "/ui/fleet"); r.status != http.StatusSeeOther {
		t.Fatalf("past the absolute timeout: %d", r.status)
	}
	// Idle for an hour: gone.
	e.signIn(c, "admin", "admin-pass")
	e.advance(61 * time.Minute)
	if r := e.get(c, "/ui/fleet"); r.status != http.StatusSeeOther {
		t.Fatalf("past the idle timeout: %d", r.status)
	}
	// Logout needs the token, and ends the session in the store: the cookie is worthless afterwards.
	tok := e.signIn(c, "admin", "admin-pass")
	u, _ := url.Parse(e.srv.URL + "/ui/")
	var secret string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			secret = ck.Value
		}
	}
	if r := e.post(c, "/ui/logout", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", r.status)
	}
	if r := e.post(c, "/ui/logout", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther || r.loc != "/ui/login" {
		t.Fatalf("logout: %d %q", r.status, r.loc)
	}
	if _, err := e.db.FindSession(context.Background(), hashSecret(secret)); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("session after logout: %v", err)
	}
	other := e.client()
	other.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: secret, Path: "/ui/"}})
	if r := e.get(other, "/ui/"); r.status != http.StatusSeeOther {
		t.Fatalf("a logged-out cookie still opens pages: %d", r.status)
	}
}

func TestRolesAndCSRFRefuseWrites(t *testing.T) {
	e := newEnv(t, false)
	admin, viewer := e.client(), e.client()
	atok := e.signIn(admin, "admin", "admin-pass")
	vtok := e.signIn(viewer, "vic", "viewer-pass")
	reg := url.Values{"device_key": {"0A0B0C0D"}, "device_id": {"dev-1"}}

	if r := e.post(admin, "/ui/devices", reg); r.status != http.StatusForbidden {
		t.Errorf("admin POST without token: %d", r.status)
	}
	reg.Set("csrf", vtok)
	if r := e.post(admin, "/ui/devices", reg); r.status != http.StatusForbidden {
		t.Errorf("admin POST with another session's token: %d", r.status)
	}
	if r := e.post(viewer, "/ui/devices", reg); r.status != http.StatusForbidden {
		t.Errorf("viewer POST: %d", r.status)
	}
	if page := e.get(viewer, "/ui/devices").body; strings.Contains(page, `action="/ui/devices/bulk"`) {
		t.Error("a viewer is shown the bulk registration form")
	}
	if _, err := e.db.FindDeviceByID(context.Background(), "dev-1"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("a refused POST registered the device: %v", err)
	}
	// A cross-site form is refused even with the right token.
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/devices", strings.NewReader(url.Values{"csrf": {atok},
		"device_key": {"0A0B0C0D"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if r, _ := admin.Do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d", r.StatusCode)
	}
	// The admin's real form: POST, redirect with a flash, GET shows it once.
	reg.Set("csrf", atok)
	r := e.post(admin, "/ui/devices", reg)
	if r.status != http.StatusSeeOther || r.loc != "/ui/devices/dev-1" {
		t.Fatalf("register: %d %q %s", r.status, r.loc, r.body)
	}
	if page := e.get(admin, r.loc).body; !strings.Contains(page, "Registered device dev-1.") {
		t.Fatalf("no flash after the redirect:\n%s", page)
	}
	if page := e.get(admin, r.loc).body; strings.Contains(page, "Registered device dev-1.") {
		t.Fatal("the flash shows twice")
	}
	// The device page's update state shows its target.
	if page := e.get(admin, r.loc).body; !strings.Contains(page, "No firmware update is targeted") {
		t.Error("a device without a target does not say so")
	}
	if err := e.db.SetTarget(context.Background(), &lodestone.OTATarget{DeviceID: "dev-1", TargetVersion: "2.0",
		CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if page := e.get(admin, r.loc).body; !strings.Contains(page, "<strong>2.0</strong>") || !strings.Contains(page, "pending") {
		t.Errorf("the device page does not show its pending target:\n%s", page)
	}
	// A bad row is a flash naming the problem, not a 500.
	reg.Set("device_key", "zz")
	if r := e.post(admin, "/ui/devices", reg); r.status != http.StatusSeeOther {
		t.Fatalf("bad key: %d", r.status)
	} else if page := e.get(admin, r.loc).body; !strings.Contains(page, "not 8 hex digits") {
		t.Fatalf("bad key flash:\n%s", page)
	}
	// Unknown filters are a 400 page saying which.
	if r := e.get(admin, "/ui/devices?status=melted"); r.status != http.StatusBadRequest || !strings.Contains(r.body, "unknown status") {
		t.Errorf("bad filter: %d", r.status)
	}
	if r := e.get(admin, "/ui/api/series?key=temp"); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"error"`) {
		t.Errorf("series without devices: %d %s", r.status, r.body)
	}
}

func TestPasswordGuessingIsLimited(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	var last int
	for i := 0; i < 30 && last != http.StatusTooManyRequests; i++ {
		tok := csrfOf(t, e.get(c, "/ui/login").body)
		last = e.post(c, "/ui/login", url.Values{"csrf": {tok}, "username": {"admin"}, "password": {"guess"}}).status
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("30 wrong passwords: last answer %d, want 429 from the API's failure limits", last)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/devices?q=a": "/ui/devices?q=a", "": "/ui/", "/devices": "/ui/", "//evil.example/ui/": "/ui/",
		"https://evil.example/ui/": "/ui/", "/ui/\\evil": "/ui/", "/ui/../admin": "/ui/", "/ui/x\r\nSet-Cookie: a": "/ui/",
		"/ui//evil.example": "/ui//evil.example",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLiveStreamsAreCapped(t *testing.T) {
	e := newEnv(t, false)
	var s streamCount
	var releases []func()
	for i := 0; i < maxStreamsPerSession; i++ {
		rel, err := s.open("a")
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		releases = append(releases, rel)
	}
	if _, err := s.open("a"); lodestone.ErrorCode(err) != lodestone.EUNAVAILABLE {
		t.Fatalf("stream past the per-session cap: %v", err)
	}
	if rel, err := s.open("b"); err != nil {
		t.Fatalf("another session is refused: %v", err)
	} else {
		rel()
	}
	releases[0]()
	if _, err := s.open("a"); err != nil {
		t.Fatalf("a closed stream's slot is not given back: %v", err)
	}
	// Without a bus the stream is a clear 503, not a hung request.
	c := e.client()
	e.signIn(c, "admin", "admin-pass")
	if r := e.get(c, "/ui/events"); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "live events") {
		t.Fatalf("events without a bus: %d %s", r.status, r.body)
	}
}

func TestCrashTriageAndBulkJSON(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	now := time.Now().UTC()
	for i, dev := range []string{"a", "b"} {
		if err := e.db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: dev, ReceivedAt: now,
			Info:   &lodestone.DeviceInfo{FirmwareVersion: "1.0"},
			Faults: []lodestone.Fault{{FaultType: 3, Registers: lodestone.Registers{PC: uint32(0x100 + i)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	faults, err := e.db.PendingFaults(ctx, 10)
	if err != nil || len(faults) != 2 {
		t.Fatalf("pending faults: %d %v", len(faults), err)
	}
	var results []lodestone.Symbolication
	for i, f := range faults {
		title := fmt.Sprintf("issue-%d", i)
		results = append(results, lodestone.Symbolication{FaultID: f.ID, Signature: title, Title: &title})
	}
	if _, err := e.db.SaveSymbolications(ctx, results); err != nil {
		t.Fatal(err)
	}
	groups, _, err := e.db.FindCrashGroups(ctx, lodestone.CrashFilter{})
	if err != nil || len(groups) != 2 {
		t.Fatalf("crash groups: %d %v", len(groups), err)
	}
	from, into := groups[0].ID, groups[1].ID
	c := e.client()
	tok := e.signIn(c, "admin", "admin-pass")
	path := fmt.Sprintf("/ui/crashes/%d", from)
	for _, st := range []string{"muted", "open", "resolved"} {
		r := e.post(c, path+"/state", url.Values{"csrf": {tok}, "state": {st}})
		if r.status != http.StatusSeeOther || r.loc != path {
			t.Fatalf("set %s: %d %q", st, r.status, r.loc)
		}
		if g, _ := e.db.FindCrashGroupByID(ctx, from); string(g.State) != st {
			t.Fatalf("state after %s: %s", st, g.State)
		}
	}
	if r := e.post(c, path+"/state", url.Values{"csrf": {tok}, "state": {"merged"}}); r.status != http.StatusBadRequest {
		t.Errorf("state merged by hand: %d", r.status)
	}
	r := e.post(c, path+"/merge", url.Values{"csrf": {tok}, "into": {fmt.Sprint(into)}})
	if want := fmt.Sprintf("/ui/crashes/%d", into); r.status != http.StatusSeeOther || r.loc != want {
		t.Fatalf("merge: %d %q, want %q", r.status, r.loc, want)
	}
	if page := e.get(c, r.loc).body; !strings.Contains(page, "Merged issue") || !strings.Contains(page, ">2<") {
		t.Errorf("merged issue page lacks the flash or the two occurrences")
	}
	if g, _ := e.db.FindCrashGroupByID(ctx, from); g.State != lodestone.CrashMerged {
		t.Fatalf("merged-from state: %s", g.State)
	}

	// A JSON file registers row by row; a bad row is reported by its number and the rest are stored.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf", tok)
	fw, _ := mw.CreateFormFile("file", "devices.json")
	fw.Write([]byte(`[{"device_key":"00000011","device_id":"j-1","tags":"lab"},{"device_key":"nope"},` +
		`{"device_key":"00000012","device_id":"j-2"}]`))
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/devices/bulk", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bulk JSON: %d", resp.StatusCode)
	}
	page := e.get(c, "/ui/devices").body
	if !strings.Contains(page, "Registered 2 of 3 devices from devices.json.") || !strings.Contains(page, "<td>2</td>") ||
		!strings.Contains(page, "not 8 hex digits") {
		t.Fatalf("bulk JSON result:\n%s", page)
	}
	for _, id := range []string{"j-1", "j-2"} {
		if _, err := e.db.FindDeviceByID(ctx, id); err != nil {
			t.Errorf("%s not registered: %v", id, err)
		}
	}
}

// TestTotalsFollowTheFleet: the overview's device cards (and GET /ui/api/totals, which the page's script asks
// after a device event) show a device that just registered, not a count from before it.
func TestTotalsFollowTheFleet(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	if r := e.get(c, "/ui/api/totals"); r.status != http.StatusSeeOther {
		t.Fatalf("signed out: %d, want a redirect to sign in", r.status)
	}
	e.signIn(c, "admin", "admin-pass")
	if r := e.get(c, "/ui/api/totals"); r.status != http.StatusOK || !strings.Contains(r.body, `"devices":0`) {
		t.Fatalf("empty fleet: %d %s", r.status, r.body)
	}
	regs := []lodestone.DeviceRegistration{{DeviceID: "fresh-1", Key: 0x1001, At: time.Now()},
		{DeviceID: "fresh-2", Key: 0x1002, At: time.Now()}}
	if _, err := e.db.RegisterDevices(context.Background(), regs); err != nil {
		t.Fatal(err)
	}
	// A count is reused for 50 times what it cost (a few milliseconds here, more on a loaded machine), never
	// more than breakdownTTL: the new devices show well within that.
	var r resp
	deadline := time.Now().Add(breakdownTTL + 2*time.Second)
	for {
		r = e.get(c, "/ui/api/totals")
		if r.status == http.StatusOK && strings.Contains(r.body, `"devices":2`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.status != http.StatusOK || !strings.Contains(r.body, `"devices":2`) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("after registering two devices: %d %q %s", r.status, r.header.Get("Cache-Control"), r.body)
	}
	if page := e.get(c, "/ui/").body; !strings.Contains(page, `id="total-devices">2<`) {
		t.Fatalf("the overview does not count the new devices:\n%s", page)
	}
}

// TestConsoleIsNotInTheAPIDescription: the console's pages are mounted in the API's route table (for its
// middleware) but are not API routes: /openapi.json describes neither them nor an empty path.
func TestConsoleIsNotInTheAPIDescription(t *testing.T) {
	e := newEnv(t, false)
	r := e.get(e.client(), "/openapi.json")
	if r.status != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.body)
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || len(doc.Paths) == 0 {
		t.Fatalf("not an OpenAPI document: %v", err)
	}
	for p := range doc.Paths {
		if p == "" || strings.HasPrefix(p, "/ui") {
			t.Errorf("the API description has the path %q", p)
		}
	}
}
