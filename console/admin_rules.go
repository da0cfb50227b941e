package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
)

// This file holds the alert rules page: the rules of /admin/alerts/rules with their alerts' states, and a form
// that creates or edits a rule with the API's validation. Rules made from ALERT_WEBHOOK_URL are read-only, as in
// the API.

// ruleForm is the rule form's values, kept to draw the form again with what was typed when it is refused.
type ruleForm struct {
	Name, Condition, ScopeType, ScopeValue           string
	Occurrences, Devices, Count, Percent, Metric     string
	Above, Below, MinDeviceHours, Window, For, Quiet string
	Webhooks                                         string
	Enabled                                          bool
}

// ruleRow is one rule in the list, with its alerts counted by state.
type ruleRow struct {
	*lodestone.AlertRule
	Hooks            []string // redacted
	Firing, Resolved int
}

// alertRow is one alert state with its rule's name.
type alertRow struct {
	*lodestone.Alert
	Rule string
}

type adminRulesView struct {
	Available  bool
	Rules      []ruleRow
	Alerts     []alertRow
	Form       ruleForm
	Errors     map[string]string
	Edit       *lodestone.AlertRule // the rule being edited; nil: a new rule
	ReadOnly   bool                 // Edit is a rule from the configuration
	Conditions []string
	Scopes     []string
}

var ruleScopes = []string{lodestone.ScopeFleet, lodestone.ScopeGroup, lodestone.ScopeTag, lodestone.ScopeDevice,
	lodestone.ScopeFirmware}

// alertsShown bounds the alert states listed under the rules, most recently changed first.
const alertsShown = 100

func (c *Console) routesAdminRules() {
	admin := func(pattern string, h pageFunc) { c.mux.HandleFunc(pattern, c.user(lodestone.RoleAdmin, h)) }
	admin("GET /ui/admin/rules", c.adminRules)
	admin("POST /ui/admin/rules", c.adminCreateRule)
	admin("GET /ui/admin/rules/{id}", c.adminRule)
	admin("POST /ui/admin/rules/{id}", c.adminUpdateRule)
	admin("POST /ui/admin/rules/{id}/delete", c.adminDeleteRule)
}

func (c *Console) alertRules() (lodestone.AlertRuleStore, error) {
	if c.cfg.Admin.AlertRules == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "alert rules are not wired on this server")
	}
	return c.cfg.Admin.AlertRules, nil
}

// rulesPage draws the list with the form (empty, being edited, or refused with its field errors).
func (c *Console) rulesPage(w http.ResponseWriter, r *request, status int, v adminRulesView) error {
	v.Conditions, v.Scopes = alert.Conditions, ruleScopes
	st := c.cfg.Admin.AlertRules
	if st == nil {
		c.adminPage(w, r, status, "admin_rules", "rules", "Alert rules", v)
		return nil
	}
	v.Available = true
	rules, err := st.FindAlertRules(r.ctx())
	if err != nil {
		return err
	}
	as, err := st.FindAlerts(r.ctx(), lodestone.AlertStateFilter{Limit: alertsShown})
	if err != nil {
		return err
	}
	names := map[int64]string{}
	idx := map[int64]int{}
	for i, rule := range rules {
		row := ruleRow{AlertRule: rule}
		for _, h := range rule.Webhooks {
			row.Hooks = append(row.Hooks, alert.RedactURL(h))
		}
		v.Rules = append(v.Rules, row)
		names[rule.ID], idx[rule.ID] = rule.Name, i
	}
	for _, a := range as {
		if i, ok := idx[a.RuleID]; ok {
			switch a.Status {
			case lodestone.AlertFiring:
				v.Rules[i].Firing++
			case lodestone.AlertResolved:
				v.Rules[i].Resolved++
			}
		}
		v.Alerts = append(v.Alerts, alertRow{Alert: a, Rule: names[a.RuleID]})
	}
	title := "Alert rules"
	if v.Edit != nil {
		title = "Alert rule " + v.Edit.Name
	}
	c.adminPage(w, r, status, "admin_rules", "rules", title, v)
	return nil
}

func (c *Console) adminRules(w http.ResponseWriter, r *request) error {
	return c.rulesPage(w, r, http.StatusOK, adminRulesView{Form: ruleForm{Condition: lodestone.CondDeviceFault,
		ScopeType: lodestone.ScopeFleet, Enabled: true}})
}

// adminRule shows one rule in the form, to edit it (or read it, for a rule from the configuration).
func (c *Console) adminRule(w http.ResponseWriter, r *request) error {
	st, err := c.alertRules()
	if err != nil {
		return err
	}
	id, err := formID(r, "id")
	if err != nil {
		return err
	}
	rule, err := st.FindAlertRule(r.ctx(), id)
	if err != nil {
		return err
	}
	return c.rulesPage(w, r, http.StatusOK, adminRulesView{Form: formOfRule(rule), Edit: rule,
		ReadOnly: rule.Origin == lodestone.RuleFromConfig})
}

// formOfRule fills the form from a stored rule. Webhook URLs stay out of it: their paths are secrets, so an empty
// webhook field on an edit keeps the rule's URLs.
func formOfRule(r *lodestone.AlertRule) ruleForm {
	num := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	ptr := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	d := func(v time.Duration) string {
		if v == 0 {
			return ""
		}
		return v.String()
	}
	t := r.Threshold
	return ruleForm{Name: r.Name, Condition: r.Condition, ScopeType: r.Scope.Type, ScopeValue: r.Scope.Value,
		Occurrences: num(float64(t.Occurrences)), Devices: num(float64(t.Devices)), Count: num(float64(t.Count)),
		Percent: num(t.Percent), Metric: t.Metric, Above: ptr(t.Above), Below: ptr(t.Below),
		MinDeviceHours: num(t.MinDeviceHours), Window: d(r.Window), For: d(r.For), Quiet: d(r.Quiet),
		Enabled: r.Enabled}
}

func readRuleForm(r *request) ruleForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return ruleForm{Name: v("name"), Condition: v("condition"), ScopeType: v("scope_type"), ScopeValue: v("scope_value"),
		Occurrences: v("occurrences"), Devices: v("devices"), Count: v("count"), Percent: v("percent"),
		Metric: v("metric"), Above: v("above"), Below: v("below"), MinDeviceHours: v("min_device_hours"),
		Window: v("window"), For: v("for"), Quiet: v("quiet_period"), Webhooks: r.PostFormValue("webhooks"),
		Enabled: r.PostFormValue("enabled") != ""}
}

// rule turns the form into a rule and checks it as the API does; the errors are by the API's field names.
// keep are the webhooks an empty webhook field stands for (an edited rule's own).
func (f ruleForm) rule(keep []string) (*lodestone.AlertRule, map[string]string) {
	bad := map[string]string{}
	rule := &lodestone.AlertRule{Name: f.Name, Condition: f.Condition, Enabled: f.Enabled, Origin: lodestone.RuleFromAPI,
		Scope: lodestone.AlertScope{Type: f.ScopeType, Value: f.ScopeValue}}
	integer := func(field, s string, into *int) {
		if s == "" {
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad["threshold."+field] = "must be a whole number"
			return
		}
		*into = n
	}
	number := func(field, s string) *float64 {
		if s == "" {
			return nil
		}
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			bad["threshold."+field] = "must be a number"
			return nil
		}
		return &n
	}
	t := &rule.Threshold
	integer("occurrences", f.Occurrences, &t.Occurrences)
	integer("devices", f.Devices, &t.Devices)
	integer("count", f.Count, &t.Count)
	if p := number("percent", f.Percent); p != nil {
		t.Percent = *p
	}
	if p := number("min_device_hours", f.MinDeviceHours); p != nil {
		t.MinDeviceHours = *p
	}
	t.Metric, t.Above, t.Below = f.Metric, number("above", f.Above), number("below", f.Below)
	for _, d := range []struct {
		field, text string
		into        *time.Duration
	}{{"window", f.Window, &rule.Window}, {"for", f.For, &rule.For}, {"quiet_period", f.Quiet, &rule.Quiet}} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			bad[d.field] = `must be a duration such as "90s", "15m" or "24h"`
			continue
		}
		*d.into = v
	}
	for _, line := range strings.FieldsFunc(f.Webhooks, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if h := strings.TrimSpace(line); h != "" {
			rule.Webhooks = append(rule.Webhooks, h)
		}
	}
	if len(rule.Webhooks) == 0 {
		rule.Webhooks = keep
	}
	for k, msg := range alert.ValidateRule(rule) {
		if _, ok := bad[k]; !ok {
			bad[k] = msg
		}
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return rule, nil
}

// ruleRefused draws the form again with what was typed and why it was refused, as 422.
func (c *Console) ruleRefused(w http.ResponseWriter, r *request, f ruleForm, edit *lodestone.AlertRule,
	bad map[string]string) error {
	return c.rulesPage(w, r, http.StatusUnprocessableEntity, adminRulesView{Form: f, Edit: edit, Errors: bad})
}

func (c *Console) adminCreateRule(w http.ResponseWriter, r *request) error {
	st, err := c.alertRules()
	if err != nil {
		return err
	}
	f := readRuleForm(r)
	rule, bad := f.rule(nil)
	if bad != nil {
		return c.ruleRefused(w, r, f, nil, bad)
	}
	if err := st.CreateAlertRule(r.ctx(), rule); err != nil {
		if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
			return c.ruleRefused(w, r, f, nil, map[string]string{"name": lodestone.ErrorMessage(err)})
		}
		return err
	}
	if err := c.auditRule(r, "alert_rule.create", rule); err != nil {
		return err
	}
	return c.done(w, r, "/ui/admin/rules", "Created alert rule "+rule.Name+".", nil)
}

// editable returns the rule the path names if the console may change it: rules from ALERT_WEBHOOK_URL follow
// that setting.
func (c *Console) editable(r *request) (lodestone.AlertRuleStore, *lodestone.AlertRule, error) {
	st, err := c.alertRules()
	if err != nil {
		return nil, nil, err
	}
	id, err := formID(r, "id")
	if err != nil {
		return nil, nil, err
	}
	rule, err := st.FindAlertRule(r.ctx(), id)
	if err != nil {
		return nil, nil, err
	}
	if rule.Origin == lodestone.RuleFromConfig {
		return nil, nil, lodestone.Errorf(lodestone.ECONFLICT, "alert rule %q is a default rule made from "+
			"ALERT_WEBHOOK_URL; change or unset that setting instead", rule.Name)
	}
	return st, rule, nil
}

func (c *Console) adminUpdateRule(w http.ResponseWriter, r *request) error {
	st, old, err := c.editable(r)
	if err != nil {
		return c.done(w, r, "/ui/admin/rules", "", err)
	}
	f := readRuleForm(r)
	rule, bad := f.rule(old.Webhooks)
	if bad != nil {
		return c.ruleRefused(w, r, f, old, bad)
	}
	rule.ID = old.ID
	if err := st.UpdateAlertRule(r.ctx(), rule); err != nil {
		if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
			return c.ruleRefused(w, r, f, old, map[string]string{"name": lodestone.ErrorMessage(err)})
		}
		return err
	}
	if err := c.auditRule(r, "alert_rule.update", rule); err != nil {
		return err
	}
	return c.done(w, r, "/ui/admin/rules", "Saved alert rule "+rule.Name+".", nil)
}

func (c *Console) adminDeleteRule(w http.ResponseWriter, r *request) error {
	st, rule, err := c.editable(r)
	if err == nil {
		err = st.DeleteAlertRule(r.ctx(), rule.ID)
	}
	if err != nil {
		return c.done(w, r, "/ui/admin/rules", "", err)
	}
	if err := c.auditRule(r, "alert_rule.delete", rule); err != nil {
		return err
	}
	return c.done(w, r, "/ui/admin/rules", "Deleted alert rule "+rule.Name+" and its alerts.", nil)
}

// auditRule records a change as the API does, with the webhooks redacted (their paths are keys).
func (c *Console) auditRule(r *request, action string, rule *lodestone.AlertRule) error {
	a := c.cfg.Admin.Audit
	if a == nil {
		return nil
	}
	hooks := make([]string, len(rule.Webhooks))
	for i, h := range rule.Webhooks {
		hooks[i] = alert.RedactURL(h)
	}
	snap := map[string]any{"id": rule.ID, "name": rule.Name, "condition": rule.Condition, "scope": rule.Scope,
		"threshold": rule.Threshold, "window": rule.Window.String(), "for": rule.For.String(),
		"quiet_period": rule.Quiet.String(), "webhooks": hooks, "enabled": rule.Enabled, "origin": rule.Origin}
	return lodestone.RecordAudit(r.ctx(), a, action, lodestone.AuditAlertRule, strconv.FormatInt(rule.ID, 10), snap)
}
