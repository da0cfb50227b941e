package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
)

func (s *Server) routesAlertRules() {
	s.handle("GET /admin/alerts", AccessAdmin, s.listAlerts)
	s.handle("GET /admin/alerts/rules", AccessAdmin, s.listAlertRules)
	s.handle("POST /admin/alerts/rules", AccessAdmin, s.createAlertRule)
	s.handle("GET /admin/alerts/rules/{id}", AccessAdmin, s.getAlertRule)
	s.handle("PUT /admin/alerts/rules/{id}", AccessAdmin, s.updateAlertRule)
	s.handle("DELETE /admin/alerts/rules/{id}", AccessAdmin, s.deleteAlertRule)
}

// alertRuleRequest is a rule as POST and PUT take it. Durations are Go duration strings ("90s", "15m", "24h").
type alertRuleRequest struct {
	Name        string                   `json:"name"`
	Condition   string                   `json:"condition"`
	Scope       *lodestone.AlertScope    `json:"scope,omitempty"`
	Threshold   lodestone.AlertThreshold `json:"threshold"`
	Window      string                   `json:"window,omitempty"`
	For         string                   `json:"for,omitempty"`
	QuietPeriod string                   `json:"quiet_period,omitempty"`
	Webhooks    []string                 `json:"webhooks"`
	Enabled     *bool                    `json:"enabled,omitempty"` // default true
}

// alertRuleJSON is a rule as the API shows it. Webhook URLs show scheme and host only: the path of a Slack or
// Discord URL is its key.
type alertRuleJSON struct {
	ID          int64                    `json:"id"`
	Name        string                   `json:"name"`
	Condition   string                   `json:"condition"`
	Scope       lodestone.AlertScope     `json:"scope"`
	Threshold   lodestone.AlertThreshold `json:"threshold"`
	Window      string                   `json:"window"`
	For         string                   `json:"for"`
	QuietPeriod string                   `json:"quiet_period"`
	Webhooks    []string                 `json:"webhooks"`
	Enabled     bool                     `json:"enabled"`
	Origin      string                   `json:"origin"` // api, or config for the rules ALERT_WEBHOOK_URL makes
	CreatedAt   string                   `json:"created_at"`
	UpdatedAt   string                   `json:"updated_at"`
}

type alertRuleReply struct {
	Rule alertRuleJSON `json:"rule"`
}

type alertRulesReply struct {
	Rules []alertRuleJSON `json:"rules"`
}

// alertJSON is one alert's state.
type alertJSON struct {
	RuleID     int64   `json:"rule_id"`
	Key        string  `json:"key"`
	Status     string  `json:"status"` // pending, firing, resolved, ok
	Since      string  `json:"since"`
	FiredAt    *string `json:"fired_at"`
	ResolvedAt *string `json:"resolved_at"`
	LastEvent  *string `json:"last_event_at"`
	Events     int64   `json:"events"`
	Value      float64 `json:"value"`
	Summary    string  `json:"summary"`
}

type alertsReply struct {
	Alerts []alertJSON `json:"alerts"`
}

func newAlertRuleJSON(r *lodestone.AlertRule) alertRuleJSON {
	hooks := make([]string, len(r.Webhooks))
	for i, h := range r.Webhooks {
		hooks[i] = alert.RedactURL(h)
	}
	return alertRuleJSON{ID: r.ID, Name: r.Name, Condition: r.Condition, Scope: r.Scope, Threshold: r.Threshold,
		Window: dur(r.Window), For: dur(r.For), QuietPeriod: dur(r.Quiet), Webhooks: hooks, Enabled: r.Enabled,
		Origin: r.Origin, CreatedAt: ts(r.CreatedAt), UpdatedAt: ts(r.UpdatedAt)}
}

func dur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return d.String()
}

func optTS(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

func (s *Server) alertRules() (lodestone.AlertRuleStore, error) {
	if s.deps.AlertRules == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "alert rules are not wired on this server")
	}
	return s.deps.AlertRules, nil
}

// decodeRule reads and validates a rule body: 422 names every field at fault.
func decodeRule(w http.ResponseWriter, r *http.Request) (*lodestone.AlertRule, error) {
	var body alertRuleRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return nil, err
	}
	rule := &lodestone.AlertRule{Name: body.Name, Condition: body.Condition, Threshold: body.Threshold,
		Webhooks: body.Webhooks, Enabled: body.Enabled == nil || *body.Enabled, Origin: lodestone.RuleFromAPI}
	if body.Scope != nil {
		rule.Scope = *body.Scope
	}
	bad := FieldErrors{}
	for _, d := range []struct {
		field string
		text  string
		into  *time.Duration
	}{{"window", body.Window, &rule.Window}, {"for", body.For, &rule.For},
		{"quiet_period", body.QuietPeriod, &rule.Quiet}} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			bad.Add(d.field, `must be a duration such as "90s", "15m" or "24h"`)
			continue
		}
		*d.into = v
	}
	for f, msg := range alert.ValidateRule(rule) {
		bad.Add(f, msg)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return rule, nil
}

func (s *Server) listAlertRules(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	rules, err := st.FindAlertRules(r.Context())
	if err != nil {
		return err
	}
	out := alertRulesReply{Rules: make([]alertRuleJSON, 0, len(rules))}
	for _, rule := range rules {
		out.Rules = append(out.Rules, newAlertRuleJSON(rule))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createAlertRule(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	rule, err := decodeRule(w, r)
	if err != nil {
		return err
	}
	if err := st.CreateAlertRule(r.Context(), rule); err != nil {
		return err
	}
	out := newAlertRuleJSON(rule)
	if err := s.audit(r.Context(), "alert_rule.create", lodestone.AuditAlertRule, strconv.FormatInt(rule.ID, 10),
		out); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, alertRuleReply{Rule: out})
	return nil
}

func (s *Server) getAlertRule(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rule, err := st.FindAlertRule(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertRuleReply{Rule: newAlertRuleJSON(rule)})
	return nil
}

// apiRule returns the rule id names if the API may change it: the default rules follow ALERT_WEBHOOK_URL.
func apiRule(r *http.Request, st lodestone.AlertRuleStore) (*lodestone.AlertRule, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	rule, err := st.FindAlertRule(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if rule.Origin == lodestone.RuleFromConfig {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "alert rule %d is a default rule made from "+
			"ALERT_WEBHOOK_URL; change or unset that setting instead", id)
	}
	return rule, nil
}

func (s *Server) updateAlertRule(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	old, err := apiRule(r, st)
	if err != nil {
		return err
	}
	rule, err := decodeRule(w, r)
	if err != nil {
		return err
	}
	rule.ID = old.ID
	if err := st.UpdateAlertRule(r.Context(), rule); err != nil {
		return err
	}
	out := newAlertRuleJSON(rule)
	if err := s.audit(r.Context(), "alert_rule.update", lodestone.AuditAlertRule, strconv.FormatInt(rule.ID, 10),
		out); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertRuleReply{Rule: out})
	return nil
}

func (s *Server) deleteAlertRule(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	rule, err := apiRule(r, st)
	if err != nil {
		return err
	}
	if err := st.DeleteAlertRule(r.Context(), rule.ID); err != nil {
		return err
	}
	if err := s.audit(r.Context(), "alert_rule.delete", lodestone.AuditAlertRule, strconv.FormatInt(rule.ID, 10),
		newAlertRuleJSON(rule)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listAlerts shows alert states, most recently changed first: what is firing now, and what fired and resolved.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	st, err := s.alertRules()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := lodestone.AlertStateFilter{Status: q.Get("status")}
	switch f.Status {
	case "", lodestone.AlertPending, lodestone.AlertFiring, lodestone.AlertResolved, lodestone.AlertOK:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be pending, firing, resolved or ok, got %q", f.Status)
	}
	if v := q.Get("rule_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return lodestone.Errorf(lodestone.EINVALID, "rule_id must be a positive integer, got %q", v)
		}
		f.RuleID = id
	}
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return err
	}
	f.Limit = lodestone.ClampLimit(f.Limit)
	as, err := st.FindAlerts(r.Context(), f)
	if err != nil {
		return err
	}
	out := alertsReply{Alerts: make([]alertJSON, 0, len(as))}
	for _, a := range as {
		out.Alerts = append(out.Alerts, alertJSON{RuleID: a.RuleID, Key: a.Key, Status: a.Status, Since: ts(a.Since),
			FiredAt: optTS(a.FiredAt), ResolvedAt: optTS(a.ResolvedAt), LastEvent: optTS(a.LastEvent),
			Events: a.Events, Value: a.Value, Summary: a.Summary})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
