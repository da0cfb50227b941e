package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// updFleet is the test's simulated fleet: devices that post their DeviceInfo and faults as chunks, poll for their
// update and report their progress, as firmware does.
type updFleet struct {
	t    *testing.T
	base string
}

func (f updFleet) info(id, version string) {
	f.t.Helper()
	body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: id, FirmwareVersion: version}.AppendPayload(nil)}.Encode()
	postRaw(f.t, f.base+"/ingest/chunks", "application/octet-stream", body, "", "")
}

func (f updFleet) faults(id, version string, n int) {
	f.t.Helper()
	body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: id, FirmwareVersion: version}.AppendPayload(nil)}.Encode()
	for i := 0; i < n; i++ {
		body = append(body, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: uint16(i + 1),
			Payload: chunk.Fault{Type: 0, PC: 0x08001234 + uint32(i)*4, SP: 0x20001f00}.AppendPayload(nil)}.Encode()...)
	}
	postRaw(f.t, f.base+"/ingest/chunks", "application/octet-stream", body, "", "")
}

// heartbeat posts each device's DeviceInfo every interval until the returned stop is called.
func (f updFleet) heartbeat(ids []string, version string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for _, id := range ids {
				body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
					Payload: chunk.DeviceInfo{DeviceID: id, FirmwareVersion: version}.AppendPayload(nil)}.Encode()
				if resp, err := http.Post(f.base+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body)); err == nil {
					resp.Body.Close()
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// offered returns the devices of ids that the server now offers version to.
func (f updFleet) offered(ids []string, running, version string) []string {
	f.t.Helper()
	var out []string
	for _, id := range ids {
		resp, err := http.Get(f.base + "/ota/check/" + id + "?version=" + running)
		if err != nil {
			f.t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(raw), `"version":"`+version+`"`) {
			out = append(out, id)
		}
	}
	return out
}

func (f updFleet) report(id, status string) {
	f.t.Helper()
	postRaw(f.t, f.base+"/ota/report", "application/json",
		[]byte(fmt.Sprintf(`{"device_id":%q,"status":%q}`, id, status)), "", "")
}

// updWaitOffers polls until exactly n of ids are offered version, the way devices poll.
func (f updFleet) waitOffers(ids []string, running, version string, n int) []string {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.offered(ids, running, version)
		if len(got) == n {
			return got
		}
		if len(got) > n || time.Now().After(deadline) {
			f.t.Fatalf("%d devices offered %s, want %d: %v", len(got), version, n, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// updAwait evaluates a promise-returning expression and waits for its string result.
func updAwait(b *browser, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// updSubmit clicks sel and waits for the next page (the one the form's redirect leads to) to show want.
func updSubmit(b *browser, sel, want string) {
	b.t.Helper()
	eval[bool](b, "window.__updOld = true")
	b.do(chromedp.Click(chromedp.CSS(sel)))
	b.waitJS("the page after "+sel, fmt.Sprintf("window.__updOld === undefined && document.querySelector(%q) !== null", want),
		30*time.Second)
}

func updNumber(b *browser, id string) string {
	return fmt.Sprintf("(document.getElementById(%q) || {}).textContent", id)
}

// updCount waits until the page (without reloading) shows n devices in state.
func updCount(b *browser, state string, n int) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%d %s on the campaign page", n, state),
		fmt.Sprintf("%s === %q && window.__noReload === true", updNumber(b, "count-"+state), strconv.Itoa(n)),
		30*time.Second)
}

// TestConsoleUpdatesInBrowser drives the updates pages of the real binary in chromium: a firmware image uploaded
// through the page with its progress shown, its facts and download, its ELF, a delete refused while a target
// uses it, targets set and cleared, then a campaign created from the form that the test's fleet follows wave by
// wave while the page updates live, halted by its health gate with the reason on the page, rolled back through
// the confirmation step and audited as a console action; the ESP32 FUOTA uploads and rows shown as such; and a
// viewer who sees no write controls and whose forged posts are refused.
func TestConsoleUpdatesInBrowser(t *testing.T) {
	chromiumPath(t)
	bin := buildBinary(t)
	const pass = "updates-admin-pass"
	dir := t.TempDir()
	fuotaAddr := freeAddr(t)
	p := startWith(t, bin, dir, []string{"--jobs-interval", "1s", "--fuota-addr", fuotaAddr},
		"BASIC_AUTH_PASS="+pass, "BASIC_AUTH_USERS=vic:viewer-pass:viewer",
		"OTA_SIGNING_KEY="+strings.Repeat("ab", 32), "US_AUTH_USERNAME=esp", "US_AUTH_PASSWORD=esp-pass")
	base := "http://" + p.addr
	admin := basicAuth("admin", pass)
	fleet := updFleet{t: t, base: base}

	// Eight devices on 1.0.0 in a group, and one more outside it.
	var ids []string
	for i := 1; i <= 8; i++ {
		id := fmt.Sprintf("node-%02d", i)
		ids = append(ids, id)
		fleet.info(id, "1.0.0")
	}
	fleet.info("bench-1", "1.0.0")
	st, ans := apiCall(t, "POST", base+"/groups", admin, []byte(`{"name":"rollout"}`))
	if st != http.StatusCreated {
		t.Fatalf("create group: %d %v", st, ans)
	}
	group := int(ans["group"].(map[string]any)["id"].(float64))
	for _, id := range ids {
		if st, ans := apiCall(t, "POST", fmt.Sprintf("%s/groups/%d/devices/%s", base, group, id), admin, nil); st >= 300 {
			t.Fatalf("add %s: %d %v", id, st, ans)
		}
	}

	b := newBrowser(t, base)
	b.signIn("admin", pass)
	b.open("/ui/updates")
	if !b.has(".empty") || !b.has("#new-campaign") {
		t.Error("the empty updates page does not explain campaigns or offer a new one")
	}
	b.screenshot("updates-empty")

	// A 6 MiB image: over the console's 4 MiB form limit, so only the streamed upload takes it.
	image := make([]byte, 6<<20)
	rand.Read(image)
	imagePath := filepath.Join(t.TempDir(), "app-2.0.0.bin")
	os.WriteFile(imagePath, image, 0o600)
	sum := sha256.Sum256(image)
	wantSHA := hex.EncodeToString(sum[:])
	var artifact string
	t.Run("upload an artifact with progress", func(t *testing.T) {
		b.t = t
		b.open("/ui/updates/firmware")
		b.screenshot("updates-firmware-empty")
		// Record what the progress line says across the navigation the upload ends with.
		eval[bool](b, `(() => { sessionStorage.removeItem("updProgress"); const t = document.getElementById("fw-progress-text");
			new MutationObserver(() => sessionStorage.setItem("updProgress", (sessionStorage.getItem("updProgress") || "") + "|" + t.textContent))
				.observe(t, {childList: true, characterData: true, subtree: true}); return true })()`)
		b.do(chromedp.SendKeys(chromedp.ID("fw-version"), "2.0.0"), chromedp.SendKeys(chromedp.ID("fw-build"), "20"),
			chromedp.SendKeys(chromedp.ID("fw-notes"), "fixes the radio watchdog"),
			chromedp.SetUploadFiles(chromedp.ID("fw-file"), []string{imagePath}),
			chromedp.Click(chromedp.CSS("#upload-firmware button")), chromedp.WaitVisible(chromedp.ID("artifact-facts")))
		if f := b.text(".flash"); !strings.Contains(f, "Uploaded 2.0.0 (6.0 MiB") {
			t.Fatalf("flash after the upload: %q", f)
		}
		progress := eval[string](b, `sessionStorage.getItem("updProgress") || ""`)
		if !strings.Contains(progress, "Uploading: ") || !strings.Contains(progress, "of 6.0 MiB") {
			t.Errorf("the progress line said %q", progress)
		}
		facts := b.text("#artifact-facts")
		for _, want := range []string{wantSHA, "6.0 MiB (6291456 bytes)", "fixes the radio watchdog", "signed (ed25519 manifest)", "2.0.0-b20-" + wantSHA[:8] + ".bin"} {
			if !strings.Contains(facts, want) {
				t.Errorf("artifact facts lack %q:\n%s", want, facts)
			}
		}
		loc, _ := url.Parse(b.location())
		artifact = loc.Path
		// The download link serves the same bytes.
		ctxSum := updAwait(b, `(async () => { const r = await fetch(document.getElementById("download").href);
			const d = await crypto.subtle.digest("SHA-256", await r.arrayBuffer());
			return [...new Uint8Array(d)].map(x => x.toString(16).padStart(2, "0")).join("") })()`)
		if ctxSum != wantSHA {
			t.Errorf("downloaded SHA-256 %s, want %s", ctxSum, wantSHA)
		}
		b.screenshot("updates-artifact")
		b.clean("artifact")

		// The ELF of the same build, for symbolication.
		elfPath, err := filepath.Abs(filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf"))
		if err != nil {
			t.Fatal(err)
		}
		b.open("/ui/updates/firmware")
		b.do(chromedp.SendKeys(chromedp.ID("elf-version"), "2.0.0"),
			chromedp.SetUploadFiles(chromedp.ID("elf-file"), []string{elfPath}))
		updSubmit(b, "#upload-elf button", ".flash")
		if f := b.text(".flash"); !strings.Contains(f, "Uploaded symbols for 2.0.0") {
			t.Fatalf("flash after the ELF upload: %q", f)
		}
		if elfs := b.text("table.elfs"); !strings.Contains(elfs, "firmware-O2.elf") {
			t.Errorf("the ELF table lacks the file:\n%s", elfs)
		}
		// A file that is no ELF is refused with the reason.
		notELF := filepath.Join(t.TempDir(), "notes.elf")
		os.WriteFile(notELF, []byte("these are release notes, not an ELF file"), 0o600)
		b.do(chromedp.SetUploadFiles(chromedp.ID("elf-file"), []string{notELF}))
		updSubmit(b, "#upload-elf button", ".flash.error")
		if f := b.text(".flash"); !strings.Contains(f, "ELF not uploaded") {
			t.Errorf("flash after a bad ELF: %q", f)
		}
		if arts := b.text("table.artifacts"); !strings.Contains(arts, "2.0.0") || !strings.Contains(arts, wantSHA[:12]) {
			t.Errorf("artifact list:\n%s", arts)
		}
		b.screenshot("updates-firmware")
		b.clean("firmware")
	})

	t.Run("targets, and a delete refused while one uses the artifact", func(t *testing.T) {
		b.t = t
		b.open("/ui/updates/targets")
		b.do(chromedp.SendKeys(chromedp.ID("set-device"), "bench-1"))
		updSubmit(b, "#set-target button", ".flash")
		if f := b.text(".flash"); !strings.Contains(f, "Target 2.0.0 set for device bench-1") {
			t.Fatalf("flash after setting a target: %q", f)
		}
		if list := b.text("table.targets"); !strings.Contains(list, "bench-1") || !strings.Contains(list, "an operator") {
			t.Fatalf("targets:\n%s", list)
		}
		if got := fleet.offered([]string{"bench-1"}, "1.0.0", "2.0.0"); len(got) != 1 {
			t.Fatal("bench-1 is not offered the target set on the page")
		}
		b.screenshot("updates-targets")
		b.open(artifact)
		updSubmit(b, "#delete", ".flash.error")
		if f := b.text(".flash"); !strings.Contains(f, "Not deleted") || !strings.Contains(f, "target of 1 device") {
			t.Fatalf("flash after deleting an artifact in use: %q", f)
		}
		if use := b.text("#in-use"); !strings.Contains(use, "1 device target") {
			t.Errorf("in use by: %q", use)
		}
		b.open("/ui/updates/targets")
		updSubmit(b, "table.targets button[aria-label='Clear the target of bench-1']", ".flash")
		if f := b.text(".flash"); !strings.Contains(f, "Cleared the target of device bench-1") {
			t.Fatalf("flash after clearing: %q", f)
		}
		if got := fleet.offered([]string{"bench-1"}, "1.0.0", "2.0.0"); len(got) != 0 {
			t.Fatal("bench-1 is still offered the cleared target")
		}
		// A group's target, then cleared again.
		b.do(chromedp.Click(chromedp.ID("set-scope-group")), chromedp.SetValue(chromedp.ID("set-group"), strconv.Itoa(group)))
		updSubmit(b, "#set-target button", ".flash")
		if f := b.text(".flash"); !strings.Contains(f, "set for 8 devices of group rollout") {
			t.Fatalf("flash after a group target: %q", f)
		}
		b.do(chromedp.Click(chromedp.ID("clear-scope-group")), chromedp.SetValue(chromedp.ID("clear-group"), strconv.Itoa(group)))
		updSubmit(b, "#clear-target button", ".flash")
		if f := b.text(".flash"); !strings.Contains(f, "Cleared the targets of 8 devices of group rollout") {
			t.Fatalf("flash after clearing a group: %q", f)
		}
		if got := fleet.offered(ids, "1.0.0", "2.0.0"); len(got) != 0 {
			t.Fatalf("still offered after the group's targets were cleared: %v", got)
		}
		b.clean("targets")
	})

	var campaign string
	t.Run("campaign follows the fleet wave by wave live and halts by its health gate", func(t *testing.T) {
		b.t = t
		b.open("/ui/updates/campaigns/new")
		b.do(chromedp.SendKeys(chromedp.ID("c-name"), "radio-fix"),
			chromedp.SetValue(chromedp.ID("c-group"), strconv.Itoa(group)),
			chromedp.SetValue(chromedp.ID("c-canary"), "25"), chromedp.SetValue(chromedp.ID("c-waves"), "50, 100"),
			chromedp.SetValue(chromedp.ID("c-soak"), "3s"), chromedp.SetValue(chromedp.ID("c-failure"), "50"))
		b.screenshot("updates-campaign-new")
		// Bad waves are refused with the form kept.
		b.do(chromedp.SetValue(chromedp.ID("c-waves"), "50, 40"))
		updSubmit(b, "#create-campaign", ".flash.error")
		b.expectError("refused campaign", "422")
		if f := b.text(".flash"); !strings.Contains(f, "waves must be") {
			t.Fatalf("flash after bad waves: %q", f)
		}
		if name := eval[string](b, `document.getElementById("c-name").value`); name != "radio-fix" {
			t.Fatalf("the refused form lost the name: %q", name)
		}
		b.do(chromedp.SetValue(chromedp.ID("c-waves"), "50, 100"), chromedp.Click(chromedp.ID("c-activate")),
			chromedp.Click(chromedp.ID("create-campaign")), chromedp.WaitVisible(chromedp.ID("campaign-states")))
		if f := b.text(".flash"); !strings.Contains(f, "Created campaign radio-fix with 8 devices") || !strings.Contains(f, "to 2 of them") {
			t.Fatalf("flash after creating: %q", f)
		}
		loc, _ := url.Parse(b.location())
		campaign = loc.Path
		b.accessible(campaign)
		eval[bool](b, "window.__noReload = true")
		b.waitJS("the live stream", "document.getElementById('upd-live-state').textContent.startsWith('Live')", 10*time.Second)

		// Wave 1, the canary: two devices download (reported), then confirm by their DeviceInfo.
		canary := fleet.waitOffers(ids, "1.0.0", "2.0.0", 2)
		for _, id := range canary {
			fleet.report(id, "downloading")
		}
		updCount(b, "downloading", 2)
		for _, id := range canary {
			fleet.info(id, "2.0.0")
		}
		updCount(b, "installed", 2)
		b.screenshot("updates-campaign")

		// After the soak the gate passes (no faults yet) and wave 2 reaches half the group.
		var rest []string
		for _, id := range ids {
			if id != canary[0] && id != canary[1] {
				rest = append(rest, id)
			}
		}
		wave2 := fleet.waitOffers(rest, "1.0.0", "2.0.0", 2)
		b.waitJS("wave 2 on the page", updNumber(b, "campaign-wave")+" === '2' && window.__noReload === true", 20*time.Second)
		// The devices still on the old firmware keep in touch, as firmware does: their observed hours are the
		// gate's baseline (a version nobody observed gives no rate to compare with).
		var later []string
		for _, id := range rest {
			if !slices.Contains(wave2, id) {
				later = append(later, id)
			}
		}
		stopBeats := fleet.heartbeat(later, "1.0.0", 300*time.Millisecond)
		defer stopBeats()
		// The canaries crash on the new firmware while wave 2 installs (reported this time).
		for _, id := range canary {
			fleet.faults(id, "2.0.0", 4)
		}
		for _, id := range wave2 {
			fleet.report(id, "downloading")
			fleet.report(id, "installed")
		}
		updCount(b, "installed", 4)
		b.waitJS("the halt and its reason", "document.getElementById('halt-reason') !== null && window.__noReload === true", 30*time.Second)
		reason := b.text("#halt-reason")
		if !strings.Contains(reason, "Halted by the health gate") || !strings.Contains(reason, "crash rate on the new firmware") {
			t.Fatalf("halt reason: %q", reason)
		}
		if st := b.text("#campaign-status"); st != "halted" {
			t.Errorf("status %q", st)
		}
		if got := b.text("#rate-new-faults"); got == "0" || got == "—" {
			t.Errorf("faults per device-hour on the new firmware: %q", got)
		}
		if v := b.text("#gate-verdict"); !strings.Contains(v, "fails") {
			t.Errorf("gate verdict: %q", v)
		}
		if waves := b.text("table.waves"); !strings.Contains(waves, "canary") {
			t.Errorf("waves table:\n%s", waves)
		}
		// The third wave was never offered.
		var left []string
		for _, id := range rest {
			if id != wave2[0] && id != wave2[1] {
				left = append(left, id)
			}
		}
		if got := fleet.offered(left, "1.0.0", "2.0.0"); len(got) != 0 {
			t.Errorf("devices offered after the halt: %v", got)
		}
		// The chart redraws a few seconds after the events, without a reload.
		b.waitJS("the chart with four devices offered and installed",
			"document.querySelectorAll('#campaign-chart[data-drawn] svg polyline').length === 3 && "+
				"document.querySelector('#campaign-chart .legend').textContent.includes('installed · last 4') && "+
				"document.querySelector('#campaign-chart .legend').textContent.includes('offered · last 4') && window.__noReload === true",
			15*time.Second)
		b.screenshot("updates-campaign-halted")
		b.clean("campaign")
	})

	t.Run("rollback with a confirmation step, audited as a console action", func(t *testing.T) {
		b.t = t
		b.open(campaign)
		b.do(chromedp.Click(chromedp.ID("action-rollback")), chromedp.WaitVisible(chromedp.ID("confirm")))
		if ex := b.text("#confirm-explain"); !strings.Contains(ex, "(4, the 4 installed ones included)") {
			t.Errorf("confirmation: %q", ex)
		}
		b.accessible(campaign + "/rollback")
		b.screenshot("updates-campaign-confirm")
		b.do(chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.ID("campaign-states")))
		if st := b.text("#campaign-status"); st != "halted" {
			t.Fatalf("cancel changed the status to %q", st)
		}
		// A post without the confirmation only leads to it.
		cookie, csrf := b.cookie("lodestone_session"), eval[string](b, "document.querySelector('input[name=csrf]') ? document.querySelector('input[name=csrf]').value : ''")
		if csrf == "" {
			b.open(campaign + "/rollback")
			csrf = eval[string](b, "document.querySelector('input[name=csrf]').value")
		}
		if code := postWithCookie(t, base+campaign+"/rollback", cookie, url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
			t.Fatalf("unconfirmed post: %d", code)
		}
		b.open(campaign)
		if st := b.text("#campaign-status"); st != "halted" {
			t.Fatalf("an unconfirmed post changed the status to %q", st)
		}
		b.do(chromedp.Click(chromedp.ID("action-rollback")), chromedp.WaitVisible(chromedp.ID("confirm")),
			chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("campaign-states")))
		if f := b.text(".flash"); !strings.Contains(f, "rolled back: 4 devices got their previous targets back") {
			t.Fatalf("flash after rollback: %q", f)
		}
		if st := b.text("#campaign-status"); st != "rolled_back" {
			t.Errorf("status after rollback %q", st)
		}
		if b.has("#action-resume") {
			t.Error("a rolled-back campaign still offers actions")
		}
		st, ans := apiCall(t, "GET", base+"/admin/audit?action=campaign.rollback", admin, nil)
		entries, _ := ans["entries"].([]any)
		if st != 200 || len(entries) != 1 {
			t.Fatalf("audit: %d %v", st, ans)
		}
		e := entries[0].(map[string]any)
		if e["via"] != "console" || e["actor"] != "admin" || e["target_kind"] != "campaign" {
			t.Errorf("audit entry %v", e)
		}
		b.open("/ui/updates")
		if list := b.text("table.campaigns"); !strings.Contains(list, "radio-fix") || !strings.Contains(list, "rolled_back") {
			t.Errorf("campaign list:\n%s", list)
		}
		b.screenshot("updates")
		b.clean("rollback")
	})

	t.Run("ESP32 FUOTA files and devices appear as such", func(t *testing.T) {
		b.t = t
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the listener's own self-signed certificate
		put := func(path, body string) {
			req, _ := http.NewRequest("PUT", "https://"+fuotaAddr+path, bytes.NewReader([]byte(body)))
			req.SetBasicAuth("esp", "esp-pass")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				t.Fatalf("PUT %s: %d", path, resp.StatusCode)
			}
		}
		put("/files/esp32/app-1.1.bin", "esp32 image bytes")
		put("/devices/esp-ab12", `"esp-ab12","1.0","esp32/app-1.1.bin"`)
		b.open("/ui/updates/fuota")
		files, devs := b.text("table.fuota-files"), b.text("table.fuota-devices")
		if !strings.Contains(files, "esp32/app-1.1.bin") || !strings.Contains(files, "awaiting approval") {
			t.Errorf("FUOTA files:\n%s", files)
		}
		if !strings.Contains(devs, "esp-ab12") || !strings.Contains(devs, "1.0") || !strings.Contains(devs, "esp32/app-1.1.bin") {
			t.Errorf("FUOTA devices:\n%s", devs)
		}
		b.screenshot("updates-fuota")
		b.open("/ui/updates/targets")
		if row := b.text("table.targets"); !strings.Contains(row, "ESP32 FUOTA") || !strings.Contains(row, "the FUOTA listener") {
			t.Errorf("the FUOTA row is not marked in the targets:\n%s", row)
		}
		b.open("/ui/updates/fuota")
		b.do(chromedp.Click(chromedp.CSS("table.fuota-files a")), chromedp.WaitVisible(chromedp.ID("approve")))
		if sig := b.text("#signature"); !strings.Contains(sig, "unsigned until a provisioner approves") {
			t.Errorf("signature state of a FUOTA upload: %q", sig)
		}
		updSubmit(b, "#approve", ".flash")
		if sig := b.text("#signature"); !strings.Contains(sig, "signed (ed25519 manifest)") {
			t.Errorf("signature state after approval: %q", sig)
		}
		b.clean("fuota")
	})

	t.Run("viewer sees no write controls and forged posts are refused", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(chromedp.CSS("form.who button")), chromedp.WaitVisible(chromedp.ID("username")))
		b.signIn("vic", "viewer-pass")
		for path, sels := range map[string][]string{
			"/ui/updates":          {"#new-campaign"},
			"/ui/updates/firmware": {"#upload-firmware", "#upload-elf"},
			artifact:               {"#delete", "form[action$='/delete']"},
			"/ui/updates/targets":  {"#set-target", "#clear-target", "table.targets button"},
			campaign:               {"section.actions", "a[id^=action-]"},
		} {
			b.open(path)
			for _, sel := range sels {
				if b.has(sel) {
					t.Errorf("a viewer sees %s on %s", sel, path)
				}
			}
		}
		viewer := b.cookie("lodestone_session")
		csrf := eval[string](b, "document.querySelector('input[name=csrf]').value")
		if code := postWithCookie(t, base+artifact+"/delete", viewer, url.Values{"csrf": {csrf}}); code != http.StatusForbidden {
			t.Errorf("viewer delete: %d, want 403", code)
		}
		if code := postWithCookie(t, base+"/ui/updates/targets", viewer, url.Values{"csrf": {csrf},
			"device_id": {"bench-1"}, "firmware_id": {"1"}}); code != http.StatusForbidden {
			t.Errorf("viewer set target: %d, want 403", code)
		}
		if code := statusWithCookie(t, base+"/ui/updates/campaigns/new", viewer); code != http.StatusForbidden {
			t.Errorf("viewer new campaign page: %d, want 403", code)
		}
		b.open(artifact)
		if !strings.Contains(b.text("#artifact-facts"), wantSHA) {
			t.Error("the artifact is gone after a viewer's refused delete")
		}
		b.clean("viewer")
	})
}
