package console

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// TestDeviceEditAndReport edits a device's name and tags from its page (audited as the admin's, via the console),
// refuses a name over the API's limit with a message and keeps the device as it was, lists the device report with
// its counts filtered by status, and refuses a viewer the edit form and the forged post.
func TestDeviceEditAndReport(t *testing.T) {
	e := newEnv(t, false)
	e.con.cfg.Reports = e.db
	ctx := context.Background()
	regs := []lodestone.DeviceRegistration{{DeviceID: "pump-1", Key: 0x1001, At: time.Now()},
		{DeviceID: "pump-2", Key: 0x1002, At: time.Now()}}
	if _, err := e.db.RegisterDevices(ctx, regs); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	csrf := e.signIn(c, "admin", "admin-pass")
	if p := e.get(c, "/ui/devices/pump-1").body; !strings.Contains(p, `id="edit-device"`) {
		t.Fatal("the admin sees no edit form on the device page")
	}
	r := e.post(c, "/ui/devices/pump-1/edit", url.Values{"csrf": {csrf}, "name": {"Basement pump"}, "tags": {"lab, north"}})
	if r.status != http.StatusSeeOther || r.loc != "/ui/devices/pump-1" {
		t.Fatalf("edit: %d %q", r.status, r.loc)
	}
	d, _ := e.db.FindDeviceByID(ctx, "pump-1")
	if d.Name == nil || *d.Name != "Basement pump" || d.Tags == nil || !strings.Contains(*d.Tags, "north") {
		t.Fatalf("after the edit: %+v", d)
	}
	if r := e.post(c, "/ui/devices/pump-1/edit", url.Values{"csrf": {csrf}, "name": {strings.Repeat("n", 129)}}); r.status != http.StatusSeeOther {
		t.Fatalf("a long name: %d", r.status)
	}
	if d, _ := e.db.FindDeviceByID(ctx, "pump-1"); *d.Name != "Basement pump" {
		t.Fatalf("a refused edit changed the name to %q", *d.Name)
	}
	if p := e.get(c, "/ui/devices/pump-1").body; !strings.Contains(p, "at most 128 bytes") {
		t.Fatal("the refused edit's message is not on the page")
	}
	if r := e.post(c, "/ui/devices/nosuch/edit", url.Values{"csrf": {csrf}, "name": {"x"}}); r.status != http.StatusSeeOther {
		t.Fatalf("an unknown device: %d", r.status)
	}
	es, _ := e.db.FindAudit(ctx, lodestone.AuditFilter{Action: "device.update"})
	if len(es) != 1 || es[0].Actor != "admin" || es[0].Via != lodestone.ViaConsole {
		t.Fatalf("audit of the edit: %d entries %+v", len(es), es)
	}

	page := e.get(c, "/ui/report/devices").body
	if !strings.Contains(page, "pump-1") || !strings.Contains(page, "pump-2") || !strings.Contains(page, "Basement pump") {
		t.Fatalf("report:\n%s", page)
	}
	if p := e.get(c, "/ui/report/devices?status=online").body; strings.Contains(p, "pump-1") {
		t.Fatal("status=online lists a provisioned device")
	}
	if r := e.get(c, "/ui/report/devices?status=sideways"); r.status != http.StatusBadRequest {
		t.Fatalf("bad status: %d", r.status)
	}

	v := e.client()
	vcsrf := e.signIn(v, "vic", "viewer-pass")
	if p := e.get(v, "/ui/devices/pump-1").body; strings.Contains(p, `id="edit-device"`) {
		t.Fatal("a viewer sees the edit form")
	}
	if r := e.get(v, "/ui/report/devices"); r.status != http.StatusOK {
		t.Fatalf("a viewer on the report: %d", r.status)
	}
	if r := e.post(v, "/ui/devices/pump-1/edit", url.Values{"csrf": {vcsrf}, "name": {"mine"}}); r.status != http.StatusForbidden {
		t.Fatalf("a viewer's forged edit: %d", r.status)
	}
	if r := e.post(v, "/ui/updates/elf/1/delete", url.Values{"csrf": {vcsrf}}); r.status != http.StatusForbidden {
		t.Fatalf("a viewer's forged ELF deletion: %d", r.status)
	}
}

// TestStabilityAndTimeline shows each firmware version's figures from the store (devices, a fault counted) with
// the range, group and tag filters, refuses a bad range and a group with a tag, and shows a device's timeline.
func TestStabilityAndTimeline(t *testing.T) {
	e := newEnv(t, false)
	e.con.cfg.Stability, e.con.cfg.Timeline = e.db, e.db
	c := e.client()
	e.signIn(c, "admin", "admin-pass")
	e.postChunks(t, "sensor-9", "3.1.0")
	page := e.get(c, "/ui/stability?range=24h")
	if page.status != http.StatusOK || !strings.Contains(page.body, `id="stability"`) || !strings.Contains(page.body, "3.1.0") {
		t.Fatalf("stability: %d\n%s", page.status, page.body)
	}
	if p := e.get(c, "/ui/stability?range=24h&tag=nosuch").body; strings.Contains(p, `id="stability"`) {
		t.Fatal("a tag no device has still lists versions")
	}
	for _, q := range []string{"range=2y", "group=a&tag=b"} {
		if r := e.get(c, "/ui/stability?"+q); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.status)
		}
	}
	dev := e.get(c, "/ui/devices/sensor-9").body
	if !strings.Contains(dev, `id="timeline-entries"`) || !strings.Contains(dev, "timeline-fault") {
		t.Fatalf("the device page has no timeline with the fault:\n%s", dev)
	}
	if r := e.get(c, "/ui/devices/sensor-9?timeline=garbage"); r.status != http.StatusBadRequest {
		t.Errorf("a bad timeline cursor: %d, want 400", r.status)
	}
}

// postChunks posts a device's DeviceInfo, a heartbeat and a fault through the real ingest endpoint.
func (e *env) postChunks(t *testing.T, id, version string) {
	t.Helper()
	body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: id, FirmwareVersion: version}.AppendPayload(nil)}.Encode()
	body = append(body, chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast, Seq: 1,
		Payload: chunk.Heartbeat{UptimeTicks: 3600000, MetricsCount: 1}.AppendPayload(nil)}.Encode()...)
	body = append(body, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 2,
		Payload: chunk.Fault{Type: 0, PC: 0x08001234, SP: 0x20001f00}.AppendPayload(nil)}.Encode()...)
	r, err := http.Post(e.srv.URL+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode >= 300 {
		t.Fatalf("ingest: %d", r.StatusCode)
	}
}

// TestDeviceDDISection draws a device page's DDI section with attributes and deployments (a campaign's, fetched,
// and one not yet fetched), as the store returns them.
func TestDeviceDDISection(t *testing.T) {
	e := newEnv(t, false)
	now := time.Now().UTC()
	camp := int64(7)
	name := "pump"
	v := deviceView{Device: &lodestone.Device{DeviceID: "ctl-1", Name: &name, Status: lodestone.StatusOnline},
		DDI: &ddiView{Attributes: map[string]string{"hwRevision": "rev-C"}, Actions: []*lodestone.DDIAction{
			{ID: 12, Version: "2.0.0", CampaignID: &camp, Status: lodestone.DDIClosed, Result: "success",
				Execution: "closed", Detail: "installed", RetrievedAt: &now, UpdatedAt: now},
			{ID: 11, Version: "1.9.0", Status: lodestone.DDIOpen, UpdatedAt: now}}}}
	var buf bytes.Buffer
	pd := &pageData{Title: "ctl-1", User: &lodestone.Principal{Name: "vic", Role: lodestone.RoleViewer}, Data: v}
	if err := e.con.pages["device"].Execute(&buf, pd); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{`id="ddi-attributes"`, "rev-C", `href="/ui/updates/campaigns/7"`, "2.0.0", "success",
		"installed", "not yet"} {
		if !strings.Contains(page, want) {
			t.Errorf("the DDI section lacks %q", want)
		}
	}
	if strings.Contains(page, `id="edit-device"`) {
		t.Error("a viewer's device page has the edit form")
	}
}
