package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/internal/glewlwyd"
)

// browser is one headless chromium shared by a test's steps, with every console error, uncaught exception and
// Content-Security-Policy violation the pages report.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shots  string
	mu     sync.Mutex
	errors []string
}

// readmeChunks is the README's curl example: DeviceInfo, RebootReason, Metrics and Heartbeat from test-device.
const readmeChunks = "EC0106011A0000000B746573742D64657669636505312E302E30EFBEADDE00000000F3A2EC0105010A00020004002A000000A08601000B37EC010201440003000306636C69636B73002A00000000000000E8030000000000000474656D70010000CC4100000000D007000000000000036C6174020000C03F00000441B80B0000000000000AC4EC010101180001003930000000000000000400000500000000000000B2F100A313C3"

func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("LODESTONE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is required (LODESTONE_REQUIRE_CHROMIUM=1) but not installed: apt-get install chromium")
	}
	t.Skip("chromium not installed (apt-get install chromium); CI sets LODESTONE_REQUIRE_CHROMIUM=1")
	return ""
}

func newBrowser(t *testing.T, base string) *browser {
	exe := chromiumPath(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless,
		chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	shots := os.Getenv("LODESTONE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	b := &browser{t: t, ctx: ctx, base: base, shots: shots}
	// The first action starts the browser and ties it to ctx: it must not run under a shorter-lived context.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.watch(ctx)
	return b
}

// watch collects the errors a tab's pages report.
func (b *browser) watch(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException ||
				strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s %s (%s)", m.Type, m.Text, m.URL))
				b.mu.Unlock()
			}
		}
	}()
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v (page %s)", err, b.location())
	}
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// open loads a console page, waits for its main heading and checks the basics of an accessible page.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.accessible(path)
}

// accessible fails when a page lacks a language, has other than one h1, a control without a label, a table
// without header cells, or a focusable element with no visible focus style.
func (b *browser) accessible(path string) {
	b.t.Helper()
	problems := eval[[]string](b, `(() => {
		const out = [];
		if (!document.documentElement.lang) out.push("no lang on <html>");
		if (document.querySelectorAll("h1").length !== 1) out.push("not exactly one h1");
		document.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(el => {
			if (!el.labels || el.labels.length === 0) out.push("unlabelled " + el.outerHTML.slice(0, 80));
		});
		document.querySelectorAll("table").forEach(t => {
			if (!t.querySelector("th")) out.push("table without header cells");
		});
		document.querySelectorAll("button, a[href]").forEach(el => {
			if (!el.textContent.trim() && !el.getAttribute("aria-label")) out.push("control without a name " + el.outerHTML.slice(0, 80));
		});
		return out;
	})()`)
	// The keyboard reaches the skip link first, then the navigation, each with a visible focus ring.
	for i, want := range []string{"Skip to content", "lodestone"} {
		b.do(chromedp.KeyEvent(kb.Tab))
		got := eval[string](b, `(() => { const el = document.activeElement, st = getComputedStyle(el);
			return st.outlineStyle !== "none" && parseFloat(st.outlineWidth) >= 2 ? el.textContent.trim() : "no focus ring on " + el.outerHTML.slice(0, 60) })()`)
		if got != want && !(i == 1 && !strings.HasPrefix(got, "no focus")) {
			problems = append(problems, fmt.Sprintf("Tab %d: %s (want %q)", i+1, got, want))
		}
	}
	eval[bool](b, "(document.activeElement.blur(), true)")
	if len(problems) > 0 {
		b.t.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v (page %s)", sel, err, b.location())
	}
	return s
}

// eval runs JavaScript through DevTools (which CSP does not restrict: the page's own scripts are what is tested).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is true in the page, without reloading it.
func (b *browser) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !eval[bool](b, expr) {
		if time.Now().After(deadline) {
			html := eval[string](b, "document.querySelector('main').innerText")
			b.t.Fatalf("waited %s for %s; the page shows:\n%s", timeout, what, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// has reports whether the page has an element matching sel.
func (b *browser) has(sel string) bool {
	return eval[bool](b, fmt.Sprintf("document.querySelector(%q) !== null", sel))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// clean fails the test if any page reported an error so far, naming them.
func (b *browser) clean(where string) {
	b.t.Helper()
	time.Sleep(0) // messages arrive asynchronously; each check reads what arrived so far
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("%s: the browser reported:\n%s", where, strings.Join(b.errors, "\n"))
		b.errors = nil
	}
}

// expectError waits for the browser to report an error containing want (an answer the test provoked), and
// forgets the errors reported so far.
func (b *browser) expectError(what, want string) {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		found := slices.ContainsFunc(b.errors, func(e string) bool { return strings.Contains(e, want) })
		if found {
			b.errors = nil
		}
		b.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: the browser reported no error with %q", what, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) signIn(user, pass string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+"/ui/"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user), chromedp.SendKeys(chromedp.ID("password"), pass),
		chromedp.Submit(chromedp.ID("password")), chromedp.WaitVisible(chromedp.CSS("header.top .user")))
	if got := b.text("header.top .user"); got != user {
		b.t.Fatalf("signed in as %q, want %q", got, user)
	}
}

func (b *browser) cookie(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/ui/"}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func postRaw(t *testing.T, url, ctype string, body []byte, user, pass string, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return string(raw)
}

// TestConsoleInBrowser drives the real binary's console in chromium: sign-in, a device that ingest created
// appearing live, a fault arriving live, its symbolicated crash issue resolved, a metric chart, bulk
// registration from a CSV file, a viewer without write controls whose forged POSTs are refused, sign-out ending
// the session on the server, and no page reporting an error or a CSP violation.
func TestConsoleInBrowser(t *testing.T) {
	chromiumPath(t)
	bin := buildBinary(t)
	const pass = "console-admin-pass"
	p := start(t, bin, t.TempDir(), "BASIC_AUTH_PASS="+pass, "BASIC_AUTH_USERS=vic:viewer-pass:viewer")
	base := "http://" + p.addr
	b := newBrowser(t, base)

	// / takes a browser to the console, which asks it to sign in first.
	b.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := b.location(); !strings.HasPrefix(loc, base+"/ui/login?next=") {
		t.Fatalf("/ led to %s", loc)
	}
	b.screenshot("login")
	// A wrong password is refused with a message.
	b.do(chromedp.SendKeys(chromedp.ID("username"), "admin"), chromedp.SendKeys(chromedp.ID("password"), "nope"),
		chromedp.Submit(chromedp.ID("password")), chromedp.WaitVisible(chromedp.CSS(".flash.error")))
	b.expectError("the refused sign-in", "401")
	b.signIn("admin", pass)
	if !b.has(".empty pre.cmd") {
		t.Error("the empty overview does not show the curl command that posts a first chunk")
	}
	b.screenshot("overview-empty")

	t.Run("device from ingest appears live", func(t *testing.T) {
		b.t = t
		eval[bool](b, "window.__noReload = true")
		b.waitJS("the live stream", "document.getElementById('live-state').textContent.startsWith('Live')",
			10*time.Second)
		raw, _ := hex.DecodeString(readmeChunks)
		postRaw(t, base+"/ingest/chunks", "application/octet-stream", raw, "", "")
		b.waitJS("test-device in the activity feed and the recently seen devices",
			"[...document.querySelectorAll('#activity a')].some(a => a.textContent === 'test-device') && "+
				"[...document.querySelectorAll('table[data-feed=device] a')].some(a => a.textContent === 'test-device')",
			10*time.Second)
		b.waitJS("the device cards counting test-device", "Number(document.getElementById('total-devices').textContent) >= 1 && "+
			"Number(document.getElementById('total-online').textContent) >= 1", 10*time.Second)
		if !eval[bool](b, "window.__noReload === true") {
			t.Fatal("the page reloaded")
		}
		b.open("/ui/devices")
		if !strings.Contains(b.text("table.devices"), "test-device") {
			t.Fatal("test-device is not in the device list")
		}
		b.screenshot("devices")
		b.clean("devices")
	})

	t.Run("metric chart draws buckets", func(t *testing.T) {
		b.t = t
		b.open("/ui/devices/test-device")
		b.waitJS("the device's charts", "document.querySelectorAll('figure.chart[data-drawn] svg polyline, figure.chart[data-drawn] svg circle').length >= 3", 15*time.Second)
		b.screenshot("device")
		b.open("/ui/metrics?key=temp&device=test-device&range=24h")
		b.waitJS("the temp chart", "document.querySelector('figure.chart[data-drawn]') !== null", 15*time.Second)
		if legend := b.text("figure.chart .legend"); !strings.Contains(legend, "test-device") || !strings.Contains(legend, "last 25.5") {
			t.Errorf("chart legend %q", legend)
		}
		b.open("/ui/metrics?key=temp&fleet=1&range=1h")
		b.waitJS("the fleet chart's band", "document.querySelector('figure.chart[data-drawn] polygon.band, figure.chart[data-drawn] circle') !== null", 15*time.Second)
		b.screenshot("metrics")
		b.clean("metrics")
	})

	var issue string
	t.Run("fault arrives live and its crash issue is symbolicated", func(t *testing.T) {
		b.t = t
		elfPath := filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf")
		elfRaw, err := os.ReadFile(elfPath)
		if err != nil {
			t.Fatal(err)
		}
		postRaw(t, base+"/ingest/elf", "application/octet-stream", elfRaw, "admin", pass, "X-Firmware-Version", "2.0.0",
			"X-Filename", "firmware-O2.elf")
		pc := symbolAddr(t, elfPath, "write_register")

		b.open("/ui/faults")
		eval[bool](b, "window.__noReload = true")
		b.waitJS("the live stream", "document.getElementById('live-state').textContent.startsWith('Live')",
			10*time.Second)
		info := chunk.DeviceInfo{DeviceID: "crashy", FirmwareVersion: "2.0.0"}.AppendPayload(nil)
		body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: info}.Encode()
		body = append(body, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 1,
			Payload: chunk.Fault{Type: 3, PC: pc, SP: 0x20001f00, CFSR: 1 << 25}.AppendPayload(nil)}.Encode()...)
		postRaw(t, base+"/ingest/chunks", "application/octet-stream", body, "", "")
		b.waitJS("the fault row", "[...document.querySelectorAll('table[data-feed=fault] tbody tr')].some(r => r.textContent.includes('crashy') && r.textContent.includes('UsageFault'))", 10*time.Second)
		if !eval[bool](b, "window.__noReload === true") {
			t.Fatal("the page reloaded")
		}
		b.screenshot("faults")

		// The symbolication workers file the fault into an issue; reload the crash list until it is there.
		deadline := time.Now().Add(20 * time.Second)
		for {
			b.open("/ui/crashes")
			if b.has("main table a[href^='/ui/crashes/']") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no crash issue: %s", b.text("main"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		b.screenshot("crashes")
		issue = eval[string](b, "document.querySelector(\"main table a[href^='/ui/crashes/']\").getAttribute('href')")
		b.do(chromedp.Click(chromedp.CSS("main table a[href^='/ui/crashes/']")), chromedp.WaitVisible(chromedp.CSS(".backtrace")))
		bt := b.text(".backtrace")
		if !strings.Contains(bt, "write_register") || !strings.Contains(bt, ".c:") || !strings.Contains(bt, "pc") {
			t.Fatalf("backtrace lacks the function, file:line or how the frame was found:\n%s", bt)
		}
		if causes := b.text(".causes"); !strings.Contains(causes, "DIVBYZERO") {
			t.Errorf("fault causes %q", causes)
		}
		if regs := b.text("table.regs"); !strings.Contains(regs, fmt.Sprintf("0x%08x", pc)) {
			t.Errorf("registers lack the PC %#x:\n%s", pc, regs)
		}
		b.screenshot("crash")

		b.do(chromedp.Click(chromedp.ID("action-resolved")), chromedp.WaitVisible(chromedp.CSS(".flash")))
		if f := b.text(".flash"); !strings.Contains(f, "resolved") {
			t.Fatalf("flash after resolving: %q", f)
		}
		if st := b.text("dl.facts .status"); st != "resolved" {
			t.Fatalf("state after resolving: %q", st)
		}
		b.clean("crash")
		b.open("/ui/")
		b.waitJS("the live stream", "document.getElementById('live-state').textContent.startsWith('Live')",
			10*time.Second)
		if top := b.text("#top-h + table"); !strings.Contains(top, "write_register") {
			t.Errorf("the overview's top crash issues lack the issue:\n%s", top)
		}
		b.screenshot("overview")
	})

	t.Run("bulk registration from a CSV file", func(t *testing.T) {
		b.t = t
		csv := filepath.Join(t.TempDir(), "devices.csv")
		os.WriteFile(csv, []byte("device_key,device_id,name,tags\n0A0B0C0D,lab-1,Lab one,\"lab,roof\"\nnot-hex,bad-1,,\n0A0B0C0E,lab-2,Lab two,lab\n"), 0o600)
		b.open("/ui/devices")
		b.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{csv}),
			chromedp.Click(chromedp.CSS("#register-bulk button")), chromedp.WaitVisible(chromedp.CSS(".flash")))
		f := b.text(".flash")
		if !strings.Contains(f, "Registered 2 of 3") || !strings.Contains(f, "bad-1") || !strings.Contains(f, "not 8 hex digits") {
			t.Fatalf("bulk result: %q", f)
		}
		if list := b.text("table.devices"); !strings.Contains(list, "lab-1") || !strings.Contains(list, "lab-2") {
			t.Fatalf("registered devices missing from the list:\n%s", list)
		}
		b.open("/ui/fleet")
		if tags := b.text("main"); !strings.Contains(tags, "lab") || !strings.Contains(tags, "roof") {
			t.Errorf("fleet page lacks the tags:\n%s", tags)
		}
		b.screenshot("fleet")
		b.clean("fleet")
	})

	t.Run("viewer sees no write controls and forged posts are refused", func(t *testing.T) {
		b.t = t
		adminCookie := b.cookie("lodestone_session")
		b.do(chromedp.Click(chromedp.CSS("form.who button")), chromedp.WaitVisible(chromedp.ID("username")))
		// The signed-out session is gone on the server, not only from the browser.
		if code := statusWithCookie(t, base+"/ui/devices", adminCookie); code != http.StatusSeeOther {
			t.Fatalf("the signed-out session still opens pages: %d", code)
		}
		b.signIn("vic", "viewer-pass")
		b.open("/ui/devices")
		if b.has("#register") || b.has("form[method=post][action='/ui/devices']") {
			t.Error("a viewer sees the registration forms")
		}
		b.open(issue)
		if b.has("section.actions") || b.has("#action-open") {
			t.Error("a viewer sees the crash triage buttons")
		}
		viewer := b.cookie("lodestone_session")
		csrf := eval[string](b, "document.querySelector('input[name=csrf]').value")
		// Without a token the server refuses the POST; with one it still refuses a viewer.
		for _, form := range []url.Values{{"state": {"open"}}, {"state": {"open"}, "csrf": {csrf}}} {
			code := postWithCookie(t, base+issue+"/state", viewer, form)
			if code != http.StatusForbidden {
				t.Errorf("viewer POST %v: %d, want 403", form, code)
			}
		}
		b.open(issue)
		if st := b.text("dl.facts .status"); st != "resolved" {
			t.Errorf("a refused POST changed the state to %q", st)
		}
		b.clean("viewer")
	})

	// Every page visited reported nothing; show that the collector does see a CSP violation.
	b.t = t
	b.clean("all pages")
	eval[bool](b, "(() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; document.body.appendChild(s); return true })()")
	b.expectError("an inline script", "Content Security Policy")
	if eval[bool](b, "window.__inline === 1") {
		t.Error("an inline script ran despite the CSP")
	}
}

func statusWithCookie(t *testing.T, u, session string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.AddCookie(&http.Cookie{Name: "lodestone_session", Value: session})
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func postWithCookie(t *testing.T, u, session string, form url.Values) int {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "lodestone_session", Value: session})
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

// symbolAddr is the address of a function in an ELF file (the Thumb bit cleared).
func symbolAddr(t *testing.T, path, name string) uint32 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Name == name {
			return uint32(s.Value &^ 1)
		}
	}
	t.Fatalf("%s has no symbol %s", path, name)
	return 0
}

// TestConsoleOIDCInBrowser signs in to the console through a real OpenID provider (glewlwyd) with the
// authorization code flow and PKCE (the provider requires it): the browser holds a session at the provider,
// follows the console's redirect there and back, and lands signed in with the role the provider's claim gives.
func TestConsoleOIDCInBrowser(t *testing.T) {
	chromiumPath(t)
	g := glewlwyd.Start(t)
	bin := buildBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	g.SetupOIDC("lodestone-console", "console-secret", []string{base + "/ui/oidc/callback"},
		map[string]string{"olga": "lodestone-provisioner"})
	if _, err := tryStart(t, addr, bin, t.TempDir(), nil, "OIDC_ISSUER="+g.Issuer(),
		"OIDC_CLIENT_ID=lodestone-console", "OIDC_CLIENT_SECRET=console-secret"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, base)

	b.do(chromedp.Navigate(base+"/ui/crashes"), chromedp.WaitVisible(chromedp.ID("oidc")))
	if b.has("#password") {
		t.Error("the password form is offered although users sign in at the provider")
	}
	b.screenshot("login-oidc")
	// Sign in at the provider, in the browser, through its API (its own login pages are a separate web app).
	b.do(chromedp.Navigate(g.Issuer() + "/.well-known/openid-configuration"))
	login := `fetch('/api/auth/', {method: 'POST', credentials: 'include', headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({username: 'olga', password: 'olga-password'})}).then(r => r.status)`
	grant := `fetch('/api/auth/grant/lodestone-console/', {method: 'PUT', credentials: 'include',
		headers: {'Content-Type': 'application/json'}, body: JSON.stringify({scope: 'openid'})}).then(r => r.status)`
	for _, js := range []string{login, grant} {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil || status != 200 {
			t.Fatalf("glewlwyd: %d %v", status, err)
		}
	}
	b.do(chromedp.Navigate(base+"/ui/crashes"), chromedp.WaitVisible(chromedp.ID("oidc")),
		chromedp.Click(chromedp.ID("oidc")))
	// The provider sends the browser to its login page, a web app this test does not serve; that page, once the
	// user is signed in and has granted the scope, returns to callback_url with g_continue. Do what it does.
	deadline := time.Now().Add(15 * time.Second)
	var at *url.URL
	for {
		// Chrome shows its own error page for the provider's empty 404; the history keeps the URL asked for.
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		hist, err := chromedp.Run(ctx, chromedp.NavigationEntries())
		cancel()
		if err == nil && len(hist.Entries) > 0 {
			at, _ = url.Parse(hist.Entries[hist.CurrentIndex].URL)
		}
		if at != nil && at.Path == "/login.html" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider did not ask for its login page: at %v", at)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.mu.Lock()
	b.errors = nil // pages of the provider are not the console's
	b.mu.Unlock()
	b.do(chromedp.Navigate(at.Query().Get("callback_url")+"&g_continue"),
		chromedp.WaitVisible(chromedp.CSS("header.top .user")))
	if u, role := b.text("header.top .user"), b.text("header.top .role"); u != "olga" || role != "provisioner" {
		t.Fatalf("signed in as %q (%q), want olga (provisioner)", u, role)
	}
	if loc := b.location(); loc != base+"/ui/crashes" {
		t.Errorf("after sign-in the browser is at %s, want the page it asked for", loc)
	}
	b.clean("OIDC sign-in")

	// A callback with a state the browser did not start is refused.
	b.do(chromedp.Navigate(base + "/ui/oidc/callback?code=x&state=forged"))
	b.expectError("a forged callback", "401")
	if !strings.Contains(b.text(".flash"), "try again") {
		t.Errorf("forged callback: %q", b.text("main"))
	}
}
