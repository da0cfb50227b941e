package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// lgLogger is the official OpenTelemetry Go SDK exporting over OTLP gRPC to the server, as a device's agent
// would: records carry device.id and attributes.
type lgLogger struct {
	t  *testing.T
	lp *sdklog.LoggerProvider
	l  otellog.Logger
}

func lgNewLogger(t *testing.T, grpcAddr, token, device string) *lgLogger {
	t.Helper()
	ctx := context.Background()
	exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(grpcAddr), otlploggrpc.WithInsecure(),
		otlploggrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "sensor-agent"), attribute.String("device.id", device))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	t.Cleanup(func() { lp.Shutdown(context.Background()) })
	return &lgLogger{t: t, lp: lp, l: lp.Logger("firmware")}
}

// emit sends one record and waits until the server acknowledged it (the simple processor exports each record).
func (g *lgLogger) emit(sev otellog.Severity, text, body string, attrs ...attribute.KeyValue) {
	g.t.Helper()
	var rec otellog.Record
	rec.SetTimestamp(time.Now())
	rec.SetBody(attribute.StringValue(body))
	rec.SetSeverity(sev)
	rec.SetSeverityText(text)
	rec.AddAttributes(attrs...)
	g.l.Emit(context.Background(), rec)
	if err := g.lp.ForceFlush(context.Background()); err != nil {
		g.t.Fatalf("export: %v", err)
	}
}

// lgPostCrash posts a detritus crash upload (metadata, dump, one attachment) to the OTLP port.
func lgPostCrash(t *testing.T, addr, token, install string, attachment []byte) {
	t.Helper()
	md := fmt.Sprintf(`{"schema_version":1,"source":{"project":"detritus","platform":"linux","version":"0.4.2",
		"install_id":%q},"timestamp":"2026-05-19T10:11:12.345Z","kind":"PanicTarball",
		"build":{"git_sha":"abcdef0","profile":"release","target_triple":"x86_64-unknown-linux-gnu"},
		"panic_text":"index out of bounds in sensor loop","context":{"loop":"sensor"},"attachments":[{"key":"console-log","filename":"console.log",
		"content_type":"text/plain","len":%d}]}`, install, len(attachment))
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range []struct {
		name, ctype string
		body        []byte
	}{{"metadata", "application/json", []byte(md)}, {"dump", "application/octet-stream", []byte("PANIC-TARBALL-BYTES")},
		{"attach:console-log", "text/plain", attachment}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"`, p.name))
		h.Set("Content-Type", p.ctype)
		w, _ := mw.CreatePart(h)
		w.Write(p.body)
	}
	mw.Close()
	postRaw(t, "http://"+addr+"/v1/crashes", mw.FormDataContentType(), buf.Bytes(), "", "", "Authorization", "Bearer "+token)
}

// lgWaitFile waits for a finished download in dir whose name has suffix and returns its bytes.
func lgWaitFile(t *testing.T, dir, suffix string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), suffix) {
				raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err == nil {
					return raw
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no download ending in %s in %s: %v", suffix, dir, ents)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lgSubmit runs steps that submit a form and waits for the next page, whose flash message contains want: the
// page before may show a flash too, so a new page is told by a mark the old one carries.
func lgSubmit(b *browser, want string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	eval[bool](b, "(window.__lgOld = true)")
	b.do(steps...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`!window.__lgOld && document.readyState !== "loading" &&
			document.querySelector(".flash") !== null && document.querySelector(".flash").textContent.includes(%q)`, want)))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no page with the message %q; at %s", want, b.location())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lgDevice(t *testing.T, base, id string) {
	t.Helper()
	info := chunk.DeviceInfo{DeviceID: id, FirmwareVersion: "1.2.0"}.AppendPayload(nil)
	postRaw(t, base+"/ingest/chunks", "application/octet-stream",
		chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: info}.Encode(), "", "")
}

// TestConsoleLogsAndGroupsInBrowser drives the real binary in chromium: logs exported by the OpenTelemetry SDK
// appear live in the explorer, the tail pauses and resumes, a record opens to its attributes, the query exports as
// NDJSON; a detritus crash upload is listed and its attachment downloads; a group is created, renamed, filled by
// search, emptied and deleted; a viewer sees all of it without a write control. Pages report no error or CSP
// violation and pass the accessibility checks.
func TestConsoleLogsAndGroupsInBrowser(t *testing.T) {
	chromiumPath(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.toml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("[[token]]\nid = \"browser\"\nsecret = %q\nproject = \"detritus\"\nsource_prefix = \"detritus/\"\n",
		otlp.HashToken("browser-token"))), 0o600)
	grpcAddr := freeAddr(t)
	const pass = "console-admin-pass"
	p := startWith(t, bin, t.TempDir(), []string{"--tokens-config", tokens, "--otlp-grpc", grpcAddr, "--otlp-http", ""},
		"BASIC_AUTH_PASS="+pass, "BASIC_AUTH_USERS=vic:viewer-pass:viewer")
	base := "http://" + p.addr
	b := newBrowser(t, base)
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	b.signIn("admin", pass)
	agent := lgNewLogger(t, grpcAddr, "browser-token", "sensor-7")
	agent.emit(otellog.SeverityInfo, "INFO", "booted firmware 1.2.0")

	t.Run("live tail, pause, expand, export", func(t *testing.T) {
		b.t = t
		b.open("/ui/logs?device=sensor-7&range=1h")
		if !strings.Contains(b.text("#log-list"), "booted firmware 1.2.0") {
			t.Fatalf("the stored record is not listed: %s", b.text("main"))
		}
		eval[bool](b, "window.__noReload = true")
		b.waitJS("the live tail", "document.getElementById('tail-state').textContent.startsWith('Live')", 10*time.Second)
		agent.emit(otellog.SeverityWarn, "WARN", "i2c bus stuck, resetting", attribute.String("module", "i2c"),
			attribute.Int("retry", 3))
		agent.emit(otellog.SeverityError, "ERROR", "sensor read failed")
		b.waitJS("the new records at the top", `(() => { const li = document.querySelectorAll('#log-list > li');
			return li.length >= 3 && li[0].textContent.includes('sensor read failed') && li[1].textContent.includes('i2c bus stuck') })()`,
			10*time.Second)
		if !eval[bool](b, "window.__noReload === true") {
			t.Fatal("the page reloaded")
		}
		if sev := b.text("#log-list > li:first-child .sev"); sev != "ERROR" {
			t.Errorf("first record's severity %q", sev)
		}

		// Paused, a new record waits; resumed, it arrives.
		b.do(chromedp.Click(chromedp.ID("tail-toggle")))
		b.waitJS("the paused state", "document.getElementById('tail-state').textContent.startsWith('Paused') && "+
			"document.getElementById('tail-toggle').getAttribute('aria-pressed') === 'true'", 5*time.Second)
		agent.emit(otellog.SeverityInfo, "INFO", "recorded while paused")
		time.Sleep(2500 * time.Millisecond) // more than two polls of the tail
		if strings.Contains(b.text("#log-list"), "recorded while paused") {
			t.Fatal("a paused tail showed a new record")
		}
		b.screenshot("logs")
		b.do(chromedp.Click(chromedp.ID("tail-toggle")))
		b.waitJS("the record sent while paused", "document.querySelector('#log-list > li').textContent.includes('recorded while paused')",
			10*time.Second)
		if n := eval[int](b, "[...document.querySelectorAll('#log-list > li')].filter(li => li.textContent.includes('i2c bus stuck')).length"); n != 1 {
			t.Errorf("after resuming, the WARN record is listed %d times", n)
		}

		// A live record opens to its attributes.
		sel := "#log-list > li:nth-child(3) summary"
		if !strings.Contains(b.text(sel), "i2c bus stuck") {
			t.Fatalf("third record: %q", b.text(sel))
		}
		b.do(chromedp.Click(chromedp.CSS(sel)))
		b.waitJS("the opened record", "document.querySelector('#log-list > li:nth-child(3) details').open", 5*time.Second)
		attrs := b.text("#log-list > li:nth-child(3) dl.attrs")
		for _, want := range []string{"module", "i2c", "retry", "3", "WARN (WARN)", "detritus", "sensor-7"} {
			if !strings.Contains(attrs, want) {
				t.Errorf("the opened record lacks %q:\n%s", want, attrs)
			}
		}
		b.screenshot("logs-record")

		// The same query, exported: every record of sensor-7, newest first, in the API's shape.
		b.do(chromedp.Click(chromedp.ID("export")))
		raw := lgWaitFile(t, downloads, ".ndjson")
		var bodies []string
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var rec lodestone.LogRecordJSON
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("export line %q: %v", sc.Text(), err)
			}
			var body string
			json.Unmarshal(rec.Body, &body)
			if rec.DeviceID != "sensor-7" || rec.Project != "detritus" {
				t.Errorf("exported record %+v", rec)
			}
			bodies = append(bodies, body)
		}
		want := []string{"recorded while paused", "sensor read failed", "i2c bus stuck, resetting", "booted firmware 1.2.0"}
		if strings.Join(bodies, "|") != strings.Join(want, "|") {
			t.Errorf("exported %q, want %q", bodies, want)
		}
		// A narrower query narrows the export and the tail alike.
		b.open("/ui/logs?device=sensor-7&severity=error")
		if list := b.text("#log-list"); !strings.Contains(list, "sensor read failed") || strings.Contains(list, "i2c") {
			t.Errorf("severity filter: %s", list)
		}
		b.clean("logs")
	})

	t.Run("crash upload listed and attachment downloaded", func(t *testing.T) {
		b.t = t
		const install = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
		attachment := []byte("12:00:01 sensor loop started\n12:00:02 panic: index out of bounds\n")
		lgPostCrash(t, grpcAddr, "browser-token", install, attachment)
		b.open("/ui/crash-uploads")
		if list := b.text("table.uploads"); !strings.Contains(list, install) || !strings.Contains(list, "PanicTarball") {
			t.Fatalf("uploads: %s", list)
		}
		b.screenshot("crash-uploads")
		b.do(chromedp.Click(chromedp.CSS("table.uploads a")), chromedp.WaitVisible(chromedp.CSS("pre.metadata")))
		b.accessible("crash upload")
		if md := b.text("main"); !strings.Contains(md, "index out of bounds in sensor loop") || !strings.Contains(md, "0.4.2") ||
			!strings.Contains(md, "x86_64-unknown-linux-gnu") {
			t.Errorf("upload page lacks its metadata:\n%s", md)
		}
		b.screenshot("crash-upload")
		b.do(chromedp.Click(chromedp.CSS("a.download-attachment")))
		if got := lgWaitFile(t, downloads, "console.log"); !bytes.Equal(got, attachment) {
			t.Errorf("downloaded attachment %q, want %q", got, attachment)
		}
		b.clean("crash uploads")
	})

	t.Run("group create, rename, membership by search, delete", func(t *testing.T) {
		b.t = t
		for _, id := range []string{"pump-north-1", "pump-north-2", "valve-3"} {
			lgDevice(t, base, id)
		}
		b.open("/ui/groups")
		lgSubmit(b, "Created group pumps", chromedp.SendKeys(chromedp.CSS("#group-create #name"), "pumps"),
			chromedp.SendKeys(chromedp.CSS("#group-create #description"), "every pump on site"),
			chromedp.Click(chromedp.CSS("#group-create button")))
		if f := b.text(".flash"); !strings.Contains(f, "Created group pumps") {
			t.Fatalf("create: %q", f)
		}
		groupPage := strings.TrimPrefix(b.location(), base)
		b.accessible(groupPage)
		eval[bool](b, "(document.querySelector('#group-rename #name').value = '', true)")
		lgSubmit(b, "Saved group north pumps", chromedp.SendKeys(chromedp.CSS("#group-rename #name"), "north pumps"),
			chromedp.Click(chromedp.CSS("#group-rename button")))
		if h := b.text("main h1"); !strings.HasPrefix(h, "north pumps") {
			t.Fatalf("renamed heading %q", h)
		}
		b.do(chromedp.SendKeys(chromedp.CSS("#member-search #q"), "pump-north"), chromedp.Submit(chromedp.CSS("#member-search #q")),
			chromedp.WaitVisible(chromedp.ID("member-add")))
		if found := b.text("#member-add table"); !strings.Contains(found, "pump-north-1") || !strings.Contains(found, "pump-north-2") ||
			strings.Contains(found, "valve-3") {
			t.Fatalf("search results: %s", found)
		}
		b.accessible("member search")
		lgSubmit(b, "Added", chromedp.Click(chromedp.CSS("#member-add input[value='pump-north-1']")),
			chromedp.Click(chromedp.CSS("#member-add input[value='pump-north-2']")),
			chromedp.Click(chromedp.CSS("#member-add button")))
		if f := b.text(".flash"); !strings.Contains(f, "Added 2 of 2") {
			t.Fatalf("add: %q", f)
		}
		if members := b.text("table.members"); !strings.Contains(members, "pump-north-1") || !strings.Contains(members, "pump-north-2") {
			t.Fatalf("members: %s", members)
		}
		if n := b.text("#member-count"); n != "2" {
			t.Errorf("member count %q", n)
		}
		b.screenshot("group")
		lgSubmit(b, "Removed pump-north-2", chromedp.Click(chromedp.CSS("button[aria-label='Remove pump-north-2 from north pumps']")))
		if members := b.text("table.members"); strings.Contains(members, "pump-north-2") || !strings.Contains(members, "pump-north-1") {
			t.Fatalf("after remove: %s", members)
		}
		// The device list's group filter agrees.
		b.open("/ui/groups")
		if list := b.text("table.groups"); !strings.Contains(list, "north pumps") || !strings.Contains(list, "every pump on site") {
			t.Fatalf("group list: %s", list)
		}
		b.screenshot("groups")
		b.do(chromedp.Click(chromedp.CSS("table.groups td a")), chromedp.WaitVisible(chromedp.ID("group-delete")))
		// Without the confirmation box the browser does not send the form (required), and the group stays.
		b.do(chromedp.Click(chromedp.CSS("#group-delete button")))
		if loc := b.location(); !strings.HasSuffix(loc, groupPage) {
			t.Fatalf("an unconfirmed delete left the page for %s", loc)
		}
		lgSubmit(b, "Deleted group", chromedp.Click(chromedp.ID("confirm")), chromedp.Click(chromedp.CSS("#group-delete button")))
		if f := b.text(".flash"); !strings.Contains(f, "Deleted group north pumps and its 1 membership") {
			t.Fatalf("delete: %q", f)
		}
		if b.has("table.groups") {
			t.Errorf("the group is still listed: %s", b.text("main"))
		}
		b.clean("groups")
	})

	t.Run("viewer reads without write controls", func(t *testing.T) {
		b.t = t
		// A group for the viewer to look at.
		b.open("/ui/groups")
		lgSubmit(b, "Created group valves", chromedp.SendKeys(chromedp.CSS("#group-create #name"), "valves"),
			chromedp.Click(chromedp.CSS("#group-create button")))
		groupPage := strings.TrimPrefix(b.location(), base)
		b.do(chromedp.Click(chromedp.CSS("form.who button")), chromedp.WaitVisible(chromedp.ID("username")))
		b.signIn("vic", "viewer-pass")
		b.open("/ui/groups")
		if b.has("#group-create") || b.has("form[method=post][action='/ui/groups']") {
			t.Error("a viewer sees the create form")
		}
		b.open(groupPage + "?q=valve")
		for _, sel := range []string{"#group-rename", "#group-delete", "#member-search", "#member-add", "button.remove"} {
			if b.has(sel) {
				t.Errorf("a viewer sees %s", sel)
			}
		}
		b.open("/ui/logs?device=sensor-7")
		b.waitJS("the viewer's live tail", "document.getElementById('tail-state').textContent.startsWith('Live')", 10*time.Second)
		if !strings.Contains(b.text("#log-list"), "sensor read failed") || b.has("main form[method=post]") {
			t.Errorf("viewer's log page: %s", b.text("main"))
		}
		b.open("/ui/crash-uploads")
		if !b.has("table.uploads a") {
			t.Error("a viewer cannot see crash uploads")
		}
		viewer := b.cookie("lodestone_session")
		csrf := eval[string](b, "document.querySelector('input[name=csrf]').value")
		if code := postWithCookie(t, base+groupPage+"/delete", viewer, map[string][]string{"confirm": {"yes"}, "csrf": {csrf}}); code != http.StatusForbidden {
			t.Errorf("viewer's forged delete: %d", code)
		}
		b.clean("viewer")
	})
}
