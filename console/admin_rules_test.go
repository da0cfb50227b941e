package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
)

// TestAdminAlertRules creates, refuses, edits and deletes alert rules through the console's forms against a real
// store: bad fields come back as 422 with the API's field names beside what was typed, an edit with no webhook
// keeps the rule's (secret) URLs, a rule from ALERT_WEBHOOK_URL cannot be changed or deleted, each change is in the
// audit log as the admin's through the console, and a viewer is refused the page and the posts.
func TestAdminAlertRules(t *testing.T) {
	e := newEnv(t, false)
	e.con.cfg.Admin.AlertRules, e.con.cfg.Admin.Audit = e.db, e.db
	ctx := context.Background()
	if err := e.db.SyncAlertRules(ctx, lodestone.RuleFromConfig,
		alert.DefaultRules([]string{"https://hooks.example/secret-key"}, 0)); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	csrf := e.signIn(c, "admin", "admin-pass")

	r := e.post(c, "/ui/admin/rules", url.Values{"csrf": {csrf}, "name": {"hot"}, "condition": {"metric"},
		"scope_type": {"fleet"}, "metric": {"temp"}, "window": {"5 minutes"}, "webhooks": {"ftp://x"}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("a bad rule: %d, want 422", r.status)
	}
	for _, want := range []string{"window: must be a duration", "threshold: metric rules need exactly one of above and below",
		"webhooks[0]: must be an http", `value="temp"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the refused form lacks %q", want)
		}
	}
	rules, _ := e.db.FindAlertRules(ctx)
	if len(rules) != 4 {
		t.Fatalf("a refused rule was stored: %d rules", len(rules))
	}

	r = e.post(c, "/ui/admin/rules", url.Values{"csrf": {csrf}, "name": {"hot"}, "condition": {"metric"},
		"scope_type": {"tag"}, "scope_value": {"lab"}, "metric": {"temp"}, "above": {"70"}, "window": {"5m"},
		"for": {"2m"}, "webhooks": {"https://hooks.example/a-secret\nhttps://b.example/other"}, "enabled": {"1"}})
	if r.status != http.StatusSeeOther || r.loc != "/ui/admin/rules" {
		t.Fatalf("create: %d %q %s", r.status, r.loc, r.body)
	}
	var hot *lodestone.AlertRule
	rules, _ = e.db.FindAlertRules(ctx)
	for _, x := range rules {
		if x.Name == "hot" {
			hot = x
		}
	}
	if hot == nil || *hot.Threshold.Above != 70 || hot.For.Minutes() != 2 || len(hot.Webhooks) != 2 ||
		hot.Scope.Value != "lab" || !hot.Enabled {
		t.Fatalf("stored rule %+v", hot)
	}
	page := e.get(c, "/ui/admin/rules").body
	if !strings.Contains(page, "hot") || strings.Contains(page, "a-secret") || !strings.Contains(page, "read-only") {
		t.Fatalf("the list shows a secret path or lacks the rules:\n%s", page)
	}
	id := "/ui/admin/rules/" + itoa(hot.ID)
	if edit := e.get(c, id).body; strings.Contains(edit, "a-secret") || !strings.Contains(edit, `value="70"`) {
		t.Fatal("the edit form shows a webhook's path or not the rule's threshold")
	}
	r = e.post(c, id, url.Values{"csrf": {csrf}, "name": {"hotter"}, "condition": {"metric"}, "scope_type": {"tag"},
		"scope_value": {"lab"}, "metric": {"temp"}, "above": {"80"}, "window": {"5m"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit: %d %s", r.status, r.body)
	}
	got, _ := e.db.FindAlertRule(ctx, hot.ID)
	if got.Name != "hotter" || *got.Threshold.Above != 80 || len(got.Webhooks) != 2 || got.Webhooks[0] != "https://hooks.example/a-secret" || got.Enabled {
		t.Fatalf("after the edit: %+v", got)
	}
	// A taken name is the name field's error.
	if r := e.post(c, id, url.Values{"csrf": {csrf}, "name": {"default: device offline"}, "condition": {"device_fault"}}); r.status != http.StatusUnprocessableEntity ||
		!strings.Contains(r.body, "field-error") {
		t.Fatalf("a taken name: %d", r.status)
	}

	var cfg *lodestone.AlertRule
	for _, x := range rules {
		if x.Origin == lodestone.RuleFromConfig {
			cfg = x
		}
	}
	cid := "/ui/admin/rules/" + itoa(cfg.ID)
	if p := e.get(c, cid).body; !strings.Contains(p, "<fieldset disabled>") || strings.Contains(p, "Save rule") {
		t.Fatal("a rule from the configuration is editable on its page")
	}
	for _, path := range []string{cid, cid + "/delete"} {
		r := e.post(c, path, url.Values{"csrf": {csrf}, "name": {"mine"}, "condition": {"device_fault"}, "webhooks": {"https://x.example/"}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("%s: %d", path, r.status)
		}
	}
	if after, err := e.db.FindAlertRule(ctx, cfg.ID); err != nil || after.Name != cfg.Name {
		t.Fatalf("the config rule changed: %+v %v", after, err)
	}

	if r := e.post(c, id+"/delete", url.Values{"csrf": {csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if _, err := e.db.FindAlertRule(ctx, hot.ID); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("the deleted rule: %v", err)
	}
	es, err := e.db.FindAudit(ctx, lodestone.AuditFilter{Action: "alert_rule.*"})
	if err != nil || len(es) != 3 {
		t.Fatalf("audit: %d entries, %v", len(es), err)
	}
	for _, a := range es {
		if a.Actor != "admin" || a.Via != lodestone.ViaConsole || strings.Contains(string(a.After), "a-secret") {
			t.Errorf("audit entry %s by %s via %s: %s", a.Action, a.Actor, a.Via, a.After)
		}
	}

	v := e.client()
	vcsrf := e.signIn(v, "vic", "viewer-pass")
	if r := e.get(v, "/ui/admin/rules"); r.status != http.StatusForbidden {
		t.Fatalf("a viewer on the rules: %d", r.status)
	}
	if r := e.post(v, "/ui/admin/rules", url.Values{"csrf": {vcsrf}, "name": {"x"}, "condition": {"device_fault"},
		"webhooks": {"https://x.example/"}}); r.status != http.StatusForbidden {
		t.Fatalf("a viewer creating a rule: %d", r.status)
	}
}
