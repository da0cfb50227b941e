package httpapi

import "net/http"

// alertDocs: alert rules and alert states (alertrules.go).
var alertDocs = map[string]RouteDoc{
	"GET /admin/alerts": {
		Summary: "List alert states",
		Description: "One entry per rule and key (a device, crash issue, firmware version or the whole scope): " +
			"pending, firing, resolved or ok, most recently changed first. An alert's webhooks go out when it " +
			"fires and when it resolves, never per event.",
		Params: []Param{{Name: "status", Enum: []string{"pending", "firing", "resolved", "ok"}},
			{Name: "rule_id", Type: int64(0)}, {Name: "limit", Type: 0}},
		Responses: []Reply{{Status: 200, Type: alertsReply{}}},
	},
	"GET /admin/alerts/rules": {
		Summary: "List alert rules",
		Description: "Every rule, including the default rules ALERT_WEBHOOK_URL makes (origin config). Webhook " +
			"URLs show scheme and host only.",
		Responses: []Reply{{Status: 200, Type: alertRulesReply{}}},
	},
	"POST /admin/alerts/rules": {
		Summary: "Create an alert rule",
		Description: "condition: device_fault, device_offline, crash_regression, campaign_halted, " +
			"new_crash_issue, crash_issue_count, crash_free_rate, devices_offline or metric; scope: fleet, " +
			"group, tag, device or firmware with its value; threshold: the fields the condition reads; window, " +
			"for and quiet_period: durations such as \"15m\". 422 names each field at fault.",
		Body: &Body{Type: alertRuleRequest{}, Example: map[string]any{"name": "pump crash loop",
			"condition": "crash_issue_count", "scope": map[string]string{"type": "group", "value": "pumps"},
			"threshold": map[string]int{"occurrences": 100}, "window": "1h", "quiet_period": "6h",
			"webhooks": []string{"https://hooks.slack.com/services/T000/B000/XXXX"}}},
		Responses: []Reply{{Status: 201, Type: alertRuleReply{}}},
		Errors:    []int{http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"GET /admin/alerts/rules/{id}": {
		Summary:   "Get an alert rule",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: alertRuleReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"PUT /admin/alerts/rules/{id}": {
		Summary: "Replace an alert rule",
		Description: "Takes the whole rule, webhooks in full (reads show them redacted). Its alert states are " +
			"kept; the next evaluation resolves what no longer holds. Default rules are 409: they follow " +
			"ALERT_WEBHOOK_URL.",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Body:      &Body{Type: alertRuleRequest{}},
		Responses: []Reply{{Status: 200, Type: alertRuleReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"DELETE /admin/alerts/rules/{id}": {
		Summary:     "Delete an alert rule",
		Description: "Its alert states go with it; its deliveries stay in the log. Default rules are 409.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 204, Description: "deleted"}},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	},
}
