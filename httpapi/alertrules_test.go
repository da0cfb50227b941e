package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

func (e *opsEnv) send(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.SetBasicAuth("admin", adminPass)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, out
}

func TestAlertRulesAPI(t *testing.T) {
	ctx := context.Background()
	e := newOpsEnv(t, httpapi.Config{})
	code, body := e.send("POST", "/admin/alerts/rules", `{"name":"pump crash loop","condition":"crash_issue_count",
		"scope":{"type":"group","value":"pumps"},"threshold":{"occurrences":100},"quiet_period":"6h",
		"webhooks":["https://hooks.slack.com/services/T000/B000/SECRET"]}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	rule := body["rule"].(map[string]any)
	id := int64(rule["id"].(float64))
	if rule["window"] != "1h0m0s" || rule["quiet_period"] != "6h0m0s" || rule["enabled"] != true ||
		rule["origin"] != "api" || rule["webhooks"].([]any)[0] != "https://hooks.slack.com/…" {
		t.Fatalf("created rule %v", rule)
	}
	stored, err := e.db.FindAlertRule(ctx, id)
	if err != nil || stored.Webhooks[0] != "https://hooks.slack.com/services/T000/B000/SECRET" ||
		stored.Threshold.Occurrences != 100 || stored.Scope.Value != "pumps" {
		t.Fatalf("stored %+v %v", stored, err)
	}
	if code, _ := e.send("POST", "/admin/alerts/rules", `{"name":"pump crash loop","condition":"device_fault",
		"webhooks":["http://a"]}`); code != 409 {
		t.Fatalf("taken name: %d", code)
	}

	// Bad rules: 422 naming each field.
	for _, c := range []struct {
		body   string
		fields []string
	}{
		{`{"name":"x","condition":"sometimes","webhooks":["http://a"]}`, []string{"condition"}},
		{`{"name":"","condition":"device_fault","webhooks":[]}`, []string{"name", "webhooks"}},
		{`{"name":"x","condition":"metric","scope":{"type":"device","value":"d1"},"threshold":{"metric":"t"},
			"webhooks":["ftp://a"]}`, []string{"threshold", "webhooks[0]"}},
		{`{"name":"x","condition":"metric","scope":{"type":"firmware","value":"1.0"},
			"threshold":{"metric":"t","above":1},"for":"soon","webhooks":["http://a"]}`, []string{"scope.type", "for"}},
		{`{"name":"x","condition":"campaign_halted","scope":{"type":"group","value":"g"},"webhooks":["http://a"]}`,
			[]string{"scope.type"}},
		{`{"name":"x","condition":"crash_free_rate","threshold":{"below":120,"count":3},"webhooks":["http://a"]}`,
			[]string{"threshold.below", "threshold.count"}},
		{`{"name":"x","condition":"device_fault","scope":{"type":"tag"},"window":"1h","webhooks":["http://a"]}`,
			[]string{"scope.value", "window"}},
		{`{"name":"x","condition":"devices_offline","threshold":{},"webhooks":["https://h/…"]}`,
			[]string{"threshold", "webhooks[0]"}},
	} {
		code, body := e.send("POST", "/admin/alerts/rules", c.body)
		fields, _ := body["fields"].(map[string]any)
		if code != 422 || len(fields) != len(c.fields) {
			t.Errorf("%s: %d %v, want 422 with %v", c.body, code, body, c.fields)
			continue
		}
		for _, f := range c.fields {
			if msg, _ := fields[f].(string); msg == "" {
				t.Errorf("%s: no message for %s in %v", c.body, f, fields)
			}
		}
	}

	// Replace: the whole rule; a redacted webhook is refused.
	code, body = e.send("PUT", "/admin/alerts/rules/"+itoa64(id), `{"name":"pump crash loop","condition":
		"crash_issue_count","threshold":{"devices":5},"window":"30m","enabled":false,"webhooks":["https://hooks.slack.com/…"]}`)
	if code != 422 {
		t.Fatalf("redacted webhook: %d %v", code, body)
	}
	code, body = e.send("PUT", "/admin/alerts/rules/"+itoa64(id), `{"name":"pump crash loop","condition":
		"crash_issue_count","threshold":{"devices":5},"window":"30m","enabled":false,"webhooks":["https://x.example/h"]}`)
	if rule, _ := body["rule"].(map[string]any); code != 200 || rule["window"] != "30m0s" || rule["enabled"] != false ||
		rule["threshold"].(map[string]any)["devices"] != float64(5) {
		t.Fatalf("replace: %d %v", code, body)
	}
	if code, _ := e.send("PUT", "/admin/alerts/rules/999", `{"name":"y","condition":"device_fault",
		"webhooks":["http://a"]}`); code != 404 {
		t.Fatalf("replace unknown: %d", code)
	}

	// Default rules follow ALERT_WEBHOOK_URL: the API shows them but does not change them.
	if err := e.db.SyncAlertRules(ctx, lodestone.RuleFromConfig, []*lodestone.AlertRule{{Name: "default: device faults",
		Condition: lodestone.CondDeviceFault, Scope: lodestone.AlertScope{Type: "fleet"}, Quiet: time.Minute,
		Webhooks: []string{"http://hook"}, Enabled: true}}); err != nil {
		t.Fatal(err)
	}
	code, body = e.send("GET", "/admin/alerts/rules", "")
	rules, _ := body["rules"].([]any)
	if code != 200 || len(rules) != 2 || rules[1].(map[string]any)["origin"] != "config" {
		t.Fatalf("list: %d %v", code, body)
	}
	defID := int64(rules[1].(map[string]any)["id"].(float64))
	if code, body := e.send("DELETE", "/admin/alerts/rules/"+itoa64(defID), ""); code != 409 ||
		!strings.Contains(body["error"].(string), "ALERT_WEBHOOK_URL") {
		t.Fatalf("delete a default rule: %d %v", code, body)
	}

	// Alert states.
	if _, err := e.db.TransitionAlert(ctx, lodestone.AlertTransition{RuleID: defID, Key: "pump-7",
		From: []string{lodestone.AlertNone}, To: lodestone.AlertFiring, At: time.Now(), Summary: "Fault on pump-7"}); err != nil {
		t.Fatal(err)
	}
	code, body = e.send("GET", "/admin/alerts?status=firing", "")
	as, _ := body["alerts"].([]any)
	if code != 200 || len(as) != 1 || as[0].(map[string]any)["key"] != "pump-7" ||
		as[0].(map[string]any)["resolved_at"] != nil || as[0].(map[string]any)["events"] != float64(1) {
		t.Fatalf("firing alerts: %d %v", code, body)
	}
	if code, body = e.send("GET", "/admin/alerts?status=resolved&rule_id="+itoa64(defID), ""); code != 200 ||
		len(body["alerts"].([]any)) != 0 {
		t.Fatalf("resolved alerts: %d %v", code, body)
	}
	if code, _ := e.send("GET", "/admin/alerts?status=loud", ""); code != 400 {
		t.Fatalf("bad status: %d", code)
	}

	if code, _ := e.send("DELETE", "/admin/alerts/rules/"+itoa64(id), ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := e.send("GET", "/admin/alerts/rules/"+itoa64(id), ""); code != 404 {
		t.Fatalf("get deleted: %d", code)
	}
}
