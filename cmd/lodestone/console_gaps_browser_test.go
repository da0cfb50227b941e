package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// TestConsoleGapsInBrowser drives the real binary's console pages that close part 2's gaps in chromium: alert rules
// (the default rules of ALERT_WEBHOOK_URL listed read-only with the alert a fault fired, a rule refused with the
// API's field errors beside its fields, created, edited and deleted, each in the audit log through the console); a
// provisioner editing a device's name and tags and seeing its hawkBit DDI attributes; an ELF symbol file uploaded
// and deleted; the device report's per-device counts; and a viewer and a provisioner without the write controls
// their role lacks, whose forged posts are refused. No page reports an error or a CSP violation.
func TestConsoleGapsInBrowser(t *testing.T) {
	chromiumPath(t)
	bin := buildBinary(t)
	const pass = "console-gaps-pass"
	p := start(t, bin, t.TempDir(), "BASIC_AUTH_PASS="+pass,
		"BASIC_AUTH_USERS=pat:prov-pass-1:provisioner,vic:viewer-pass-1:viewer",
		"ALERT_WEBHOOK_URL=http://127.0.0.1:9/hooks/secret-path", "DDI_ANONYMOUS=true")
	base := "http://" + p.addr
	fleet := updFleet{t: t, base: base}
	fleet.faults("pump-1", "1.0.0", 2)
	// A heartbeat gives pump-1 observed device-hours on 1.0.0, for the stability page.
	hb := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: "pump-1", FirmwareVersion: "1.0.0"}.AppendPayload(nil)}.Encode()
	hb = append(hb, chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast, Seq: 9,
		Payload: chunk.Heartbeat{UptimeTicks: 3600000, MetricsCount: 1}.AppendPayload(nil)}.Encode()...)
	postRaw(t, base+"/ingest/chunks", "application/octet-stream", hb, "", "")
	fleet.info("pump-2", "1.0.0")

	b := newBrowser(t, base)
	b.signIn("admin", pass)

	t.Run("alert rules: listed with their alerts, refused, created, edited, deleted", func(t *testing.T) {
		b.t = t
		b.open("/ui/admin")
		b.do(chromedp.Click(chromedp.CSS(`nav.tabs a[href="/ui/admin/rules"]`)), chromedp.WaitVisible(chromedp.ID("rules")))
		rules := gapText(b, "#rules tbody")
		if !strings.Contains(rules, "default: device faults") || strings.Count(rules, "read-only") != 4 ||
			strings.Contains(rules, "secret-path") {
			t.Fatalf("the default rules are not listed read-only with their URLs redacted:\n%s", rules)
		}
		// The fault posted above fires the default fault rule for pump-1 (the alert service follows the bus).
		deadline := time.Now().Add(20 * time.Second)
		for !b.has("#alert-states") || !strings.Contains(gapText(b, "#alert-states tbody"), "firing") {
			if time.Now().After(deadline) {
				t.Fatalf("no firing alert for pump-1's faults:\n%s", gapText(b, "main"))
			}
			time.Sleep(500 * time.Millisecond)
			b.open("/ui/admin/rules")
		}
		if row := gapText(b, "#alert-states tbody"); !strings.Contains(row, "pump-1") || !strings.Contains(row, "default: device faults") {
			t.Errorf("alert states: %q", row)
		}
		if row := gapText(b, "#rules tbody tr:first-child"); !strings.Contains(row, "1 firing") {
			t.Errorf("the fault rule's row does not count its firing alert: %q", row)
		}
		b.screenshot("admin-rules")

		b.do(chromedp.SetValue(chromedp.ID("rule-name"), "hot"), chromedp.SetValue(chromedp.ID("rule-condition"), "metric"),
			chromedp.SetValue(chromedp.ID("rule-scope"), "tag"), chromedp.SetValue(chromedp.ID("rule-scope-value"), "lab"),
			chromedp.SetValue(chromedp.ID("rule-metric"), "temp"), chromedp.SetValue(chromedp.ID("rule-window"), "5 minutes"),
			chromedp.SetValue(chromedp.ID("rule-webhooks"), "ftp://hooks.example/x"))
		updSubmit(b, "#rule-form button[type=submit]", "#rule-errors")
		b.expectError("the refused rule", "422")
		b.accessible("refused rule")
		errs := gapText(b, "#rule-form")
		for _, want := range []string{"must be a duration", "exactly one of above and below", "must be an http"} {
			if !strings.Contains(errs, want) {
				t.Errorf("the refused form lacks %q:\n%s", want, errs)
			}
		}
		if v := eval[string](b, "document.getElementById('rule-metric').value"); v != "temp" {
			t.Errorf("the refused form lost what was typed: metric %q", v)
		}
		b.screenshot("admin-rule-errors")
		b.do(chromedp.SetValue(chromedp.ID("rule-window"), "5m"), chromedp.SetValue(chromedp.ID("rule-above"), "70"),
			chromedp.SetValue(chromedp.ID("rule-webhooks"), "https://hooks.example/rule-key"))
		updSubmit(b, "#rule-form button[type=submit]", ".flash")
		if f := gapText(b, ".flash"); !strings.Contains(f, "Created alert rule hot") {
			t.Fatalf("flash after creating: %q", f)
		}
		if rules := gapText(b, "#rules tbody"); !strings.Contains(rules, "hot") || !strings.Contains(rules, "tag: lab") ||
			strings.Contains(rules, "rule-key") {
			t.Fatalf("rules after creating:\n%s", rules)
		}
		code, body := admAPIBasic(t, base+"/admin/alerts/rules", "admin", pass)
		if code != 200 || !strings.Contains(body, `"name":"hot"`) || !strings.Contains(body, `"above":70`) {
			t.Fatalf("the API does not see the rule: %d %s", code, body)
		}

		b.do(chromedp.Click(chromedp.CSS(`#rules a[aria-label="Edit rule hot"]`)), chromedp.WaitVisible(chromedp.CSS("#rule-form")))
		if v := eval[string](b, "document.getElementById('rule-above').value"); v != "70" {
			t.Fatalf("the edit form shows above %q", v)
		}
		b.do(chromedp.SetValue(chromedp.ID("rule-name"), "hotter"), chromedp.SetValue(chromedp.ID("rule-above"), "80"))
		updSubmit(b, "#rule-form button[type=submit]", ".flash")
		if f := gapText(b, ".flash"); !strings.Contains(f, "Saved alert rule hotter") {
			t.Fatalf("flash after editing: %q", f)
		}
		code, body = admAPIBasic(t, base+"/admin/alerts/rules", "admin", pass)
		if !strings.Contains(body, `"name":"hotter"`) || !strings.Contains(body, `"above":80`) ||
			!strings.Contains(body, "hooks.example") {
			t.Fatalf("after the edit the API shows %d %s", code, body)
		}

		// A default rule's page is read-only.
		b.do(chromedp.Click(chromedp.CSS(`#rules tbody tr:first-child td:first-child a`)), chromedp.WaitVisible(chromedp.CSS("#rule-form")))
		if !eval[bool](b, "document.querySelector('#rule-form fieldset').disabled") || b.has("#rule-form button[type=submit]") {
			t.Error("a default rule's form can be submitted")
		}
		b.open("/ui/admin/rules")
		admConfirm(b)
		admClearFlash(b)
		b.do(chromedp.Click(chromedp.CSS(`#rules button[aria-label="Delete rule hotter"]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
		if f := gapText(b, ".flash"); !strings.Contains(f, "Deleted alert rule hotter") || strings.Contains(gapText(b, "#rules"), "hotter") {
			t.Fatalf("after deleting: %q", f)
		}
		b.open("/ui/admin/audit?action=alert_rule.*")
		rows := gapText(b, "#audit tbody")
		for _, want := range []string{"alert_rule.create", "alert_rule.update", "alert_rule.delete", "console"} {
			if !strings.Contains(rows, want) {
				t.Errorf("audit log lacks %q:\n%s", want, rows)
			}
		}
		b.clean("alert rules")
	})

	pb := newBrowser(t, base)
	pb.signIn("pat", "prov-pass-1")

	t.Run("device: name and tags edited by a provisioner, DDI attributes shown", func(t *testing.T) {
		pb.t = t
		// pump-1 polls as a hawkBit controller and reports its attributes.
		if code, body := admDo(t, mustReq(t, "GET", base+"/DEFAULT/controller/v1/pump-1", "")); code != 200 {
			t.Fatalf("DDI poll: %d %s", code, body)
		}
		// configData answers 200 with no body, which admDo would take for a broken answer.
		resp, err := http.DefaultClient.Do(mustReq(t, "PUT", base+"/DEFAULT/controller/v1/pump-1/configData",
			`{"mode":"merge","data":{"hwRevision":"rev-C","serial":"SN-0042"}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("DDI configData: %d", resp.StatusCode)
		}
		pb.open("/ui/devices/pump-1")
		if attrs := gapText(pb, "#ddi-attributes"); !strings.Contains(attrs, "hwRevision") || !strings.Contains(attrs, "rev-C") {
			t.Fatalf("DDI attributes: %q", attrs)
		}
		pb.do(chromedp.SetValue(chromedp.ID("device-name"), "Basement pump"), chromedp.SetValue(chromedp.ID("device-tags"), "lab,north"))
		updSubmit(pb, "#edit-device button", ".flash")
		if f := gapText(pb, ".flash"); !strings.Contains(f, "Saved the name and tags") {
			t.Fatalf("flash after editing: %q", f)
		}
		if h := gapText(pb, "main h1"); !strings.Contains(h, "Basement pump") {
			t.Errorf("heading after the edit: %q", h)
		}
		if facts := gapText(pb, "dl.facts"); !strings.Contains(facts, "north") {
			t.Errorf("tags after the edit: %q", facts)
		}
		code, body := admAPIBasic(t, base+"/devices/pump-1", "admin", pass)
		if code != 200 || !strings.Contains(body, `"Basement pump"`) || !strings.Contains(body, "north") {
			t.Fatalf("the API after the edit: %d %s", code, body)
		}
		pb.screenshot("device-edit")
		pb.clean("device edit")
	})

	t.Run("ELF: uploaded and deleted from the firmware page", func(t *testing.T) {
		pb.t = t
		pb.open("/ui/updates/firmware")
		elfPath, err := filepath.Abs(filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf"))
		if err != nil {
			t.Fatal(err)
		}
		pb.do(chromedp.SendKeys(chromedp.ID("elf-version"), "1.0.0"), chromedp.SetUploadFiles(chromedp.ID("elf-file"), []string{elfPath}))
		updSubmit(pb, "#upload-elf button", ".flash")
		if elfs := gapText(pb, "table.elfs"); !strings.Contains(elfs, "firmware-O2.elf") {
			t.Fatalf("the ELF table lacks the file:\n%s", elfs)
		}
		pb.screenshot("updates-elf")
		admConfirm(pb)
		updSubmit(pb, `table.elfs button[aria-label="Delete ELF firmware-O2.elf of 1.0.0"]`, ".flash")
		if f := gapText(pb, ".flash"); !strings.Contains(f, "Deleted the symbols of 1.0.0") {
			t.Fatalf("flash after deleting: %q", f)
		}
		if pb.has("table.elfs") {
			t.Errorf("the ELF is still listed: %s", gapText(pb, "table.elfs"))
		}
		if code, body := admAPIBasic(t, base+"/elfs", "admin", pass); code != 200 || strings.Contains(body, "firmware-O2") {
			t.Errorf("the API still lists the ELF: %d %s", code, body)
		}
		pb.clean("ELF")
	})

	t.Run("device report: counts per device", func(t *testing.T) {
		b.t = t
		b.open("/ui/devices")
		b.do(chromedp.Click(chromedp.ID("report-link")), chromedp.WaitVisible(chromedp.ID("device-report")))
		b.accessible("device report")
		row := eval[string](b, `[...document.querySelectorAll('#device-report tbody tr')].find(r => r.textContent.includes('pump-1')).innerText`)
		cells := strings.Split(row, "\t")
		if len(cells) != 8 || cells[5] != "2" || cells[7] != "0" {
			t.Fatalf("pump-1's report row %q: want 2 faults, 0 reboots", row)
		}
		if rows := gapText(b, "#device-report tbody"); !strings.Contains(rows, "pump-2") {
			t.Errorf("pump-2 missing from the report:\n%s", rows)
		}
		b.screenshot("device-report")
		b.clean("device report")
	})

	t.Run("stability per version and the device timeline", func(t *testing.T) {
		b.t = t
		b.open("/ui/fleet")
		b.do(chromedp.Click(chromedp.ID("stability-link")), chromedp.WaitVisible(chromedp.CSS("main h1")))
		b.accessible("stability")
		if !b.has("#stability") {
			t.Fatalf("no stability table:\n%s", gapText(b, "main"))
		}
		row := eval[string](b, `[...document.querySelectorAll('#stability tbody tr')].find(r => r.textContent.includes('1.0.0')).innerText`)
		cells := strings.Split(row, "\t")
		if len(cells) != 8 || cells[1] != "1" || !strings.Contains(cells[4], "(2)") || !strings.HasSuffix(cells[3], "%") {
			t.Fatalf("1.0.0's stability row %q: want 1 device (pump-2 sent no heartbeat) and 2 faults", row)
		}
		b.screenshot("stability")
		// pump-1 carries the tag north since the edit above; pump-2 does not.
		b.do(chromedp.SetValue(chromedp.ID("range"), "24h"), chromedp.SetValue(chromedp.ID("tag"), "north"))
		updSubmit(b, "main form.filters button", "main h1")
		row = eval[string](b, `[...document.querySelectorAll('#stability tbody tr')].find(r => r.textContent.includes('1.0.0')).innerText`)
		if cells := strings.Split(row, "\t"); len(cells) != 8 || cells[1] != "1" {
			t.Fatalf("tag north: row %q, want 1 device", row)
		}
		b.open("/ui/stability?tag=nosuch")
		if b.has("#stability") {
			t.Error("a tag no device has lists versions")
		}
		b.open("/ui/devices/pump-1")
		if tl := gapText(b, "#timeline-entries"); !strings.Contains(tl, "fault") {
			t.Fatalf("pump-1's timeline: %q", tl)
		}
		b.screenshot("device-timeline")
		b.clean("stability")
	})

	t.Run("roles: viewer sees no write controls, forged posts refused", func(t *testing.T) {
		vic, _ := admSignIn(t, base, "vic", "viewer-pass-1", http.StatusSeeOther)
		_, page := admGet(t, vic, base+"/ui/devices/pump-1")
		if strings.Contains(page, `id="edit-device"`) || !strings.Contains(page, "hwRevision") {
			t.Error("a viewer sees the device edit form, or not the DDI attributes")
		}
		csrf := admCSRF(t, page)
		if code, page := admGet(t, vic, base+"/ui/updates/firmware"); code != 200 || strings.Contains(page, "/ui/updates/elf/") {
			t.Errorf("a viewer on the firmware page: %d, delete controls shown: %v", code, strings.Contains(page, "/ui/updates/elf/"))
		}
		if code, page := admGet(t, vic, base+"/ui/stability"); code != 200 || !strings.Contains(page, "1.0.0") {
			t.Errorf("a viewer on the stability page: %d", code)
		}
		if code, _ := admGet(t, vic, base+"/ui/report/devices"); code != 200 {
			t.Errorf("a viewer on the device report: %d", code)
		}
		if code, _ := admGet(t, vic, base+"/ui/admin/rules"); code != 403 {
			t.Errorf("a viewer on the alert rules: %d, want 403", code)
		}
		forged := map[string]url.Values{
			"/ui/devices/pump-1/edit":  {"name": {"mine"}},
			"/ui/updates/elf/1/delete": {},
			"/ui/admin/rules":          {"name": {"x"}, "condition": {"device_fault"}, "webhooks": {"https://x.example/"}},
			"/ui/admin/rules/1/delete": {},
		}
		for path, form := range forged {
			form.Set("csrf", csrf)
			if code := admPost(t, vic, base+path, form); code != 403 {
				t.Errorf("a viewer's POST %s: %d, want 403", path, code)
			}
		}
		pat, _ := admSignIn(t, base, "pat", "prov-pass-1", http.StatusSeeOther)
		_, page = admGet(t, pat, base+"/ui/")
		if code, _ := admGet(t, pat, base+"/ui/admin/rules"); code != 403 {
			t.Errorf("a provisioner on the alert rules: %d, want 403", code)
		}
		form := url.Values{"csrf": {admCSRF(t, page)}, "name": {"x"}, "condition": {"device_fault"}, "webhooks": {"https://x.example/"}}
		if code := admPost(t, pat, base+"/ui/admin/rules", form); code != 403 {
			t.Errorf("a provisioner's forged rule: %d, want 403", code)
		}
		if _, body := admAPIBasic(t, base+"/devices/pump-1", "admin", pass); !strings.Contains(body, "Basement pump") {
			t.Errorf("a refused post changed the device: %s", body)
		}
	})
}

// mustReq builds a request with an optional JSON body.
func mustReq(t *testing.T, method, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// gapText reads an element's text in the page's current document (chromedp's node cache can lag a navigation that
// a form's redirect started); it fails when no element matches.
func gapText(b *browser, sel string) string {
	b.t.Helper()
	b.waitJS(sel, fmt.Sprintf("document.querySelector(%q) !== null", sel), 10*time.Second)
	return eval[string](b, fmt.Sprintf("document.querySelector(%q).innerText", sel))
}
