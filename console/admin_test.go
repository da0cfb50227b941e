package console

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

var auditRowRE = regexp.MustCompile(`<code>probe\.(even|odd)</code>`)
var olderRE = regexp.MustCompile(`<a href="([^"]+)" rel="next">Older`)

// TestAdminAuditPages pages through the audit log fifty entries at a time by its keyset cursor, with a filter that
// follows the pages, refuses bad filters with a 400 page, and refuses a viewer.
func TestAdminAuditPages(t *testing.T) {
	e := newEnv(t, false)
	e.con.cfg.Admin.Audit = e.db
	ctx := lodestone.SystemContext(context.Background(), "probe")
	for i := range 120 {
		action := "probe.odd"
		if i%2 == 0 {
			action = "probe.even"
		}
		if err := lodestone.RecordAudit(ctx, e.db, action, "probe", "", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client()
	e.signIn(c, "admin", "admin-pass")
	walk := func(path string) (pages []int, kinds map[string]int) {
		t.Helper()
		kinds = map[string]int{}
		for path != "" {
			r := e.get(c, path)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			rows := auditRowRE.FindAllStringSubmatch(r.body, -1)
			pages = append(pages, len(rows))
			for _, m := range rows {
				kinds[m[1]]++
			}
			path = ""
			if m := olderRE.FindStringSubmatch(r.body); m != nil {
				path = strings.ReplaceAll(m[1], "&amp;", "&")
			}
		}
		return pages, kinds
	}
	if pages, kinds := walk("/ui/admin/audit"); len(pages) != 3 || pages[0] != 50 || pages[1] != 50 ||
		pages[2] != 20 || kinds["even"] != 60 || kinds["odd"] != 60 {
		t.Fatalf("all entries: pages %v, kinds %v; want 50, 50, 20", pages, kinds)
	}
	if pages, kinds := walk("/ui/admin/audit?action=probe.even"); len(pages) != 2 || pages[0] != 50 ||
		pages[1] != 10 || kinds["odd"] != 0 {
		t.Fatalf("probe.even: pages %v, kinds %v; want 50, 10 and no odd entry", pages, kinds)
	}
	if _, kinds := walk("/ui/admin/audit?actor=nobody"); len(kinds) != 0 {
		t.Fatalf("actor=nobody lists %v", kinds)
	}
	for _, q := range []string{"since=yesterday", "until=2026-13-01T00:00", "before=-3", "actor=" + strings.Repeat("x", 300)} {
		if r := e.get(c, "/ui/admin/audit?"+q); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.status)
		}
	}
	v := e.client()
	csrf := e.signIn(v, "vic", "viewer-pass")
	if r := e.get(v, "/ui/admin/audit"); r.status != http.StatusForbidden {
		t.Fatalf("a viewer on the audit log: %d", r.status)
	}
	if r := e.post(v, "/ui/admin/tokens", url.Values{"csrf": {csrf}, "name": {"x"}, "role": {"admin"}}); r.status != http.StatusForbidden {
		t.Fatalf("a viewer creating a token: %d", r.status)
	}
}

// TestAdminSecretShownOnce: a new token's secret is on the answer to the post only, never cached, and the token
// list shows its first characters alone.
func TestAdminSecretShownOnce(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.signIn(c, "admin", "admin-pass")
	r := e.post(c, "/ui/admin/tokens", url.Values{"csrf": {csrf}, "name": {"deploy"}, "role": {"provisioner"}})
	m := regexp.MustCompile(`id="secret" class="secret-value">(lst_[A-Za-z0-9_-]+)<`).FindStringSubmatch(r.body)
	if r.status != http.StatusCreated || m == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create token: %d %q %s", r.status, r.header.Get("Cache-Control"), r.body)
	}
	list := e.get(c, "/ui/admin/tokens").body
	if strings.Contains(list, m[1]) || !strings.Contains(list, m[1][:8]+"…") {
		t.Fatal("the token list shows the whole secret, or not its first characters")
	}
	// Bad input is a flash on the page, and nothing is created.
	r = e.post(c, "/ui/admin/tokens", url.Values{"csrf": {csrf}, "name": {"bad name!"}, "role": {"owner"}})
	if r.status != http.StatusSeeOther || r.loc != "/ui/admin/tokens" {
		t.Fatalf("a bad token form: %d %q", r.status, r.loc)
	}
	if page := e.get(c, "/ui/admin/tokens").body; !strings.Contains(page, "role must be viewer, provisioner or admin") ||
		strings.Contains(page, "bad name!") {
		t.Fatalf("the flash does not say what is wrong:\n%s", page)
	}
	// The same form without its token is refused.
	if r := e.post(c, "/ui/admin/tokens", url.Values{"name": {"x"}, "role": {"admin"}}); r.status != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", r.status)
	}
}

// TestAdminDeleteDevice: only an admin deletes a device, and only with the confirmation ticked.
func TestAdminDeleteDevice(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.signIn(c, "admin", "admin-pass")
	if r := e.post(c, "/ui/devices", url.Values{"csrf": {csrf}, "device_key": {"0A0B0C0D"}, "device_id": {"gone-1"}}); r.status != http.StatusSeeOther {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if page := e.get(c, "/ui/devices/gone-1").body; !strings.Contains(page, `id="delete-device"`) {
		t.Fatal("an admin's device page has no delete form")
	}
	v := e.client()
	vcsrf := e.signIn(v, "vic", "viewer-pass")
	if page := e.get(v, "/ui/devices/gone-1").body; strings.Contains(page, `id="delete-device"`) {
		t.Fatal("a viewer's device page has the delete form")
	}
	if r := e.post(v, "/ui/devices/gone-1/delete", url.Values{"csrf": {vcsrf}, "confirm": {"yes"}}); r.status != http.StatusForbidden {
		t.Fatalf("a viewer deleting: %d", r.status)
	}
	if r := e.post(c, "/ui/devices/gone-1/delete", url.Values{"csrf": {csrf}}); r.status != http.StatusSeeOther ||
		!strings.HasPrefix(r.loc, "/ui/devices/gone-1") {
		t.Fatalf("delete without the confirmation: %d %q", r.status, r.loc)
	}
	if _, err := e.db.FindDeviceByID(context.Background(), "gone-1"); err != nil {
		t.Fatalf("the device went without the confirmation: %v", err)
	}
	if r := e.post(c, "/ui/devices/gone-1/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); r.status != http.StatusSeeOther || r.loc != "/ui/devices" {
		t.Fatalf("delete: %d %q", r.status, r.loc)
	}
	if _, err := e.db.FindDeviceByID(context.Background(), "gone-1"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("after deleting: %v", err)
	}
}
