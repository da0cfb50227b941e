package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
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
