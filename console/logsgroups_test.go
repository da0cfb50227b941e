package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
)

// lgEnv is newEnv with the log explorer's services: the same SQLite store and a blob directory.
func lgEnv(t *testing.T) (*env, lodestone.BlobStore) {
	t.Helper()
	e := newEnv(t, false)
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.con.cfg.Logs = LogsDeps{Logs: e.db, Scanner: e.db, Head: e.db, Uploads: e.db, Blobs: blobs,
		TailEvery: 20 * time.Millisecond}
	return e, blobs
}

func lgRecord(dev string, t time.Time, sev int32, body string) *lodestone.LogRecord {
	raw, _ := json.Marshal(body)
	return &lodestone.LogRecord{Project: "fleet", DeviceID: dev, Time: t, ObservedTime: t, Severity: sev,
		SeverityText: logSeverityName(sev), Body: string(raw), Attributes: `{"module":"i2c","retry":3}`, ReceivedAt: t}
}

// TestGroupsPagesWriteThroughTheServiceAndAudit: a provisioner creates, renames, fills by search, empties and
// deletes a group through the forms; every change is in the audit log as the user, via the console; bad input and
// a taken name come back as messages; a viewer reads but every write is refused.
func TestGroupsPagesWriteThroughTheServiceAndAudit(t *testing.T) {
	e, _ := lgEnv(t)
	ctx := context.Background()
	var regs []lodestone.DeviceRegistration
	for i, id := range []string{"pump-1", "pump-2", "valve-1"} {
		regs = append(regs, lodestone.DeviceRegistration{DeviceID: id, Key: uint32(0x1000 + i), At: time.Now()})
	}
	if res, err := e.db.RegisterDevices(ctx, regs); err != nil || res[2].Err != nil {
		t.Fatalf("register: %v", err)
	}
	c := e.client()
	tok := e.signIn(c, "admin", "admin-pass")
	r := e.post(c, "/ui/groups", url.Values{"csrf": {tok}, "name": {"  pumps "}, "description": {"all pumps"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/ui/groups/") {
		t.Fatalf("create: %d %q %s", r.status, r.loc, r.body)
	}
	page := r.loc
	id, _ := strconv.ParseInt(strings.TrimPrefix(page, "/ui/groups/"), 10, 64)
	if p := e.get(c, page); !strings.Contains(p.body, "Created group pumps.") || !strings.Contains(p.body, "all pumps") {
		t.Fatalf("group page after create: %s", p.body)
	}
	// A taken name and an empty one are refused with a message, and nothing changes.
	for _, form := range []url.Values{{"name": {"pumps"}}, {"name": {"  "}}} {
		form.Set("csrf", tok)
		r := e.post(c, "/ui/groups", form)
		if r.status != http.StatusSeeOther || r.loc != "/ui/groups" {
			t.Fatalf("refused create: %d %q", r.status, r.loc)
		}
		if p := e.get(c, "/ui/groups"); !strings.Contains(p.body, "Not created") {
			t.Fatalf("no refusal message for %v: %s", form, p.body)
		}
	}
	// Search finds both pumps; adding them (and a device that does not exist) reports each.
	offer := func(id string) string { return `type="checkbox" name="device_id" value="` + id + `"` }
	if p := e.get(c, page+"?q=pump"); !strings.Contains(p.body, offer("pump-1")) || !strings.Contains(p.body, offer("pump-2")) ||
		strings.Contains(p.body, offer("valve-1")) {
		t.Fatalf("search results: %s", p.body)
	}
	r = e.post(c, page+"/members", url.Values{"csrf": {tok}, "q": {"pump"}, "device_id": {"pump-1", "pump-2", "ghost"}})
	if r.status != http.StatusSeeOther || r.loc != page+"?q=pump" {
		t.Fatalf("add: %d %q", r.status, r.loc)
	}
	p := e.get(c, r.loc)
	if !strings.Contains(p.body, "Added 2 of 3") || !strings.Contains(p.body, "ghost") {
		t.Fatalf("add result: %s", p.body)
	}
	// Members are no longer offered in the search.
	if strings.Contains(p.body, offer("pump-1")) || !strings.Contains(p.body, ">member<") {
		t.Fatalf("members still offered: %s", p.body)
	}
	members, err := e.db.FindDevices(ctx, lodestone.DeviceFilter{GroupID: id})
	if err != nil || len(members) != 2 {
		t.Fatalf("members %d %v", len(members), err)
	}
	r = e.post(c, page+"/members/remove", url.Values{"csrf": {tok}, "device_id": {"pump-2"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("remove: %d", r.status)
	}
	if r := e.post(c, page, url.Values{"csrf": {tok}, "name": {"pumps-north"}, "description": {""}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.status)
	}
	g, err := e.db.FindGroup(ctx, id)
	if err != nil || g.Name != "pumps-north" || g.DeviceCount != 1 || g.Description == nil || *g.Description != "" {
		t.Fatalf("after rename and remove: %+v %v", g, err)
	}

	// A viewer sees the group without forms, and every write is refused.
	v := e.client()
	vtok := e.signIn(v, "vic", "viewer-pass")
	if p := e.get(v, page); p.status != 200 || strings.Contains(p.body, `action="/ui/groups/`) ||
		!strings.Contains(p.body, "pump-1") {
		t.Fatalf("viewer's group page: %d %s", p.status, p.body)
	}
	for _, path := range []string{"/ui/groups", page, page + "/delete", page + "/members", page + "/members/remove"} {
		if r := e.post(v, path, url.Values{"csrf": {vtok}, "name": {"x"}, "device_id": {"pump-1"}, "confirm": {"yes"}}); r.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d", path, r.status)
		}
	}

	// Deleting needs the confirmation box.
	if r := e.post(c, page+"/delete", url.Values{"csrf": {tok}}); r.loc != page {
		t.Fatalf("unconfirmed delete went to %q", r.loc)
	}
	if _, err := e.db.FindGroup(ctx, id); err != nil {
		t.Fatalf("an unconfirmed delete deleted: %v", err)
	}
	if r := e.post(c, page+"/delete", url.Values{"csrf": {tok}, "confirm": {"yes"}}); r.loc != "/ui/groups" {
		t.Fatalf("delete went to %q", r.loc)
	}
	if _, err := e.db.FindGroup(ctx, id); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("after delete: %v", err)
	}
	if p := e.get(c, page); p.status != http.StatusNotFound {
		t.Fatalf("deleted group's page: %d", p.status)
	}

	entries, err := e.db.FindAudit(ctx, lodestone.AuditFilter{Action: "group.*"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range entries {
		if en.Via != lodestone.ViaConsole || en.Actor != "admin" || en.ActorKind != lodestone.ActorUser {
			t.Errorf("audit entry %s by %s/%s via %q", en.Action, en.ActorKind, en.Actor, en.Via)
		}
		got = append(got, en.Action)
	}
	want := "group.delete group.update group.remove_device group.add_device group.add_device group.create"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit actions %q, want %q", strings.Join(got, " "), want)
	}
}

// TestLogExplorerQueryTailAndExport: the explorer filters by device, severity, text and time; bad input is a 400
// page that keeps the form; the live tail sends only matching records stored after its cursor and resumes from
// Last-Event-ID; the export streams every matching record once, newest first, across pages that share a
// timestamp.
func TestLogExplorerQueryTailAndExport(t *testing.T) {
	e, _ := lgEnv(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	e.mu.Lock()
	e.now = now
	e.mu.Unlock()
	recs := []*lodestone.LogRecord{lgRecord("dev-a", now.Add(-2*time.Hour), 9, "boot ok"),
		lgRecord("dev-a", now.Add(-time.Minute), 17, "I2C bus stuck"),
		lgRecord("dev-b", now.Add(-30*time.Second), 13, "battery low")}
	if err := e.db.WriteLogs(ctx, recs); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.signIn(c, "vic", "viewer-pass")
	for _, tc := range []struct {
		q        string
		want     []string
		not      []string
		wantCode int
	}{
		{"", []string{"boot ok", "I2C bus stuck", "battery low"}, nil, 200},
		{"range=1h", []string{"I2C bus stuck", "battery low"}, []string{"boot ok"}, 200},
		{"severity=warn", []string{"I2C bus stuck", "battery low"}, []string{"boot ok"}, 200},
		{"device=dev-a&q=i2c", []string{"I2C bus stuck"}, []string{"battery low", "boot ok"}, 200},
		{"since=" + now.Add(-3*time.Hour).Format("2006-01-02T15:04") + "&until=" + now.Add(-time.Hour).Format("2006-01-02T15:04:05"),
			[]string{"boot ok"}, []string{"battery low"}, 200},
		{"severity=loud", []string{"severity must be"}, []string{"boot ok"}, 400},
		{"since=yesterday", []string{"is not a time"}, nil, 400},
		{"range=1y", []string{"range must be"}, nil, 400},
	} {
		p := e.get(c, "/ui/logs?"+tc.q)
		if p.status != tc.wantCode {
			t.Errorf("%s: status %d", tc.q, p.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(p.body, w) {
				t.Errorf("%s: page lacks %q", tc.q, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(p.body, n) {
				t.Errorf("%s: page has %q", tc.q, n)
			}
		}
		if tc.wantCode == 400 && !strings.Contains(p.body, `id="log-query"`) {
			t.Errorf("%s: the refused query's page has no form", tc.q)
		}
	}
	// A record's attributes are on the page, sorted.
	if p := e.get(c, "/ui/logs?device=dev-b"); !strings.Contains(p.body, `<dt class="attr">module</dt><dd class="attr">i2c</dd><dt class="attr">retry</dt><dd class="attr">3</dd>`) {
		t.Errorf("attributes not shown: %s", p.body)
	}

	t.Run("tail", func(t *testing.T) {
		p := e.get(c, "/ui/logs?severity=warn&project=fleet")
		i := strings.Index(p.body, `data-tail="`)
		if i < 0 {
			t.Fatalf("no tail on the page: %s", p.body)
		}
		tail := strings.ReplaceAll(p.body[i+len(`data-tail="`):][:strings.Index(p.body[i+len(`data-tail="`):], `"`)], "&amp;", "&")
		req, _ := http.NewRequest("GET", e.srv.URL+tail, nil)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := c.Do(req.WithContext(cctx))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("tail: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		// Stored after the page: a WARN of another project and an INFO (both filtered out), then two WARNs.
		other := lgRecord("dev-c", now, 13, "elsewhere")
		other.Project = "other"
		later := []*lodestone.LogRecord{other, lgRecord("dev-c", now, 9, "chatter"), lgRecord("dev-c", now, 13, "hot"),
			lgRecord("dev-c", now, 14, "hotter")}
		if err := e.db.WriteLogs(ctx, later); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		id, msg := lgReadTail(t, br)
		if n, _ := strconv.ParseInt(id, 10, 64); n < recs[2].ID || n > later[3].ID || len(msg.Rows) != 2 ||
			msg.Rows[0].Body != "hot" || msg.Rows[1].Body != "hotter" || msg.Rows[1].Severity != "WARN" ||
			len(msg.Rows[1].Attrs) != 2 {
			t.Fatalf("tail message id %s: %+v", id, msg)
		}
		// Later looks reread the last ids (for late commits) but send each record once.
		time.Sleep(100 * time.Millisecond)
		if err := e.db.WriteLogs(ctx, []*lodestone.LogRecord{lgRecord("dev-c", now, 17, "hottest")}); err != nil {
			t.Fatal(err)
		}
		if _, msg := lgReadTail(t, br); len(msg.Rows) != 1 || msg.Rows[0].Body != "hottest" {
			t.Fatalf("second message: %+v", msg)
		}
		// Resuming after the first WARN sends only the second.
		req2, _ := http.NewRequest("GET", e.srv.URL+"/ui/logs/tail?severity=warn&project=fleet", nil)
		req2.Header.Set("Last-Event-ID", strconv.FormatInt(later[2].ID, 10))
		res2, err := c.Do(req2.WithContext(cctx))
		if err != nil {
			t.Fatal(err)
		}
		defer res2.Body.Close()
		if _, msg := lgReadTail(t, bufio.NewReader(res2.Body)); len(msg.Rows) != 2 || msg.Rows[0].Body != "hotter" || msg.Rows[1].Body != "hottest" {
			t.Fatalf("resumed tail: %+v", msg)
		}
		if r := e.get(c, "/ui/logs/tail?after=-1"); r.status != http.StatusBadRequest {
			t.Fatalf("bad cursor: %d", r.status)
		}
	})

	t.Run("export", func(t *testing.T) {
		// 2,500 records at one instant and 1,500 at others: the export pages through both without loss or repeat.
		var many []*lodestone.LogRecord
		same := now.Add(-10 * time.Minute)
		for i := range 4000 {
			at := same
			if i >= 2500 {
				at = same.Add(-time.Duration(i) * time.Millisecond)
			}
			many = append(many, lgRecord("bulk", at, 9, fmt.Sprintf("line %d", i)))
		}
		if err := e.db.WriteLogs(ctx, many); err != nil {
			t.Fatal(err)
		}
		res, err := c.Get(e.srv.URL + "/ui/logs/export?device=bulk&range=1h")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/x-ndjson" ||
			!strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("export: %d %v", res.StatusCode, res.Header)
		}
		seen := map[string]bool{}
		sc := bufio.NewScanner(res.Body)
		var prev time.Time
		n := 0
		for sc.Scan() {
			var rec lodestone.LogRecordJSON
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("line %d: %v: %s", n, err, sc.Text())
			}
			var body string
			json.Unmarshal(rec.Body, &body)
			if seen[body] {
				t.Fatalf("%q exported twice", body)
			}
			seen[body] = true
			if n > 0 && rec.Time.After(prev) {
				t.Fatalf("line %d is newer than the one before", n)
			}
			prev = rec.Time
			n++
		}
		if n != 4000 {
			t.Fatalf("exported %d of 4000", n)
		}
		if r := e.get(c, "/ui/logs/export?severity=x"); r.status != http.StatusBadRequest {
			t.Fatalf("bad export query: %d", r.status)
		}
	})
}

// lgReadTail reads the stream until its first logs event and returns its id and data.
func lgReadTail(t *testing.T, br *bufio.Reader) (string, tailMessage) {
	t.Helper()
	var id, event string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("tail ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: ") && event == "logs":
			var msg tailMessage
			if err := json.Unmarshal([]byte(line[6:]), &msg); err != nil {
				t.Fatal(err)
			}
			return id, msg
		case line == "":
			event = ""
		}
	}
}

// TestCrashUploadPagesAndDownloads: the list and the upload's page show its metadata; the dump and each
// attachment download as stored, as attachments the browser does not render; unknown ones are 404 pages.
func TestCrashUploadPagesAndDownloads(t *testing.T) {
	e, blobs := lgEnv(t)
	ctx := context.Background()
	put := func(s string) lodestone.BlobRef {
		ref, _, err := blobs.Put(ctx, strings.NewReader(s), 0)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	u := &lodestone.CrashUpload{Project: "detritus", InstallID: "0b9e6c8e-1f0a-4f4e-9d8e-3c0f3b2a1d00",
		Platform: "linux", Version: "0.1.0", Kind: "PanicTarball", Timestamp: time.Now().UTC(),
		Metadata: `{"schema_version":1,"panic_text":"boom at <script>"}`, Dump: put("DUMPBYTES"), ReceivedAt: time.Now().UTC(),
		Attachments: []lodestone.CrashAttachment{{Key: "../sdk config", ContentType: "text/html", Blob: put("<h1>hi</h1>")}}}
	if err := e.db.CreateCrashUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	e.signIn(c, "vic", "viewer-pass")
	if p := e.get(c, "/ui/crash-uploads"); !strings.Contains(p.body, fmt.Sprintf(`href="/ui/crash-uploads/%d"`, u.ID)) {
		t.Fatalf("list: %s", p.body)
	}
	p := e.get(c, fmt.Sprintf("/ui/crash-uploads/%d", u.ID))
	if p.status != 200 || !strings.Contains(p.body, "boom at &lt;script&gt;") || !strings.Contains(p.body, u.Dump.SHA256) {
		t.Fatalf("upload page: %d %s", p.status, p.body)
	}
	for path, want := range map[string]string{"/dump": "DUMPBYTES", "/attachments/1": "<h1>hi</h1>"} {
		r := e.get(c, fmt.Sprintf("/ui/crash-uploads/%d%s", u.ID, path))
		if r.status != 200 || r.body != want || r.header.Get("Content-Type") != "application/octet-stream" ||
			r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("%s: %d %q %v", path, r.status, r.body, r.header)
		}
		if path == "/attachments/1" && r.header.Get("Content-Disposition") != `attachment; filename="_._sdk_config"` {
			t.Errorf("attachment name %q", r.header.Get("Content-Disposition"))
		}
	}
	for _, path := range []string{"/attachments/2", "/attachments/0", "/attachments/x"} {
		if r := e.get(c, fmt.Sprintf("/ui/crash-uploads/%d%s", u.ID, path)); r.status != http.StatusNotFound {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	if r := e.get(c, "/ui/crash-uploads/999"); r.status != http.StatusNotFound {
		t.Errorf("unknown upload: %d", r.status)
	}
}
