package alert

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// condition describes what a condition accepts and how its alerts behave.
type condition struct {
	event         bool     // fires on events (Watch); otherwise evaluated by the leader
	notifyResolve bool     // a webhook goes out when the alert resolves, not only when it fires
	scopes        []string // the scopes it accepts
	window        time.Duration
}

var allScopes = []string{lodestone.ScopeFleet, lodestone.ScopeGroup, lodestone.ScopeTag, lodestone.ScopeDevice,
	lodestone.ScopeFirmware}

// conditions lists every condition; window is its default window (0: it takes none).
var conditions = map[string]condition{
	lodestone.CondDeviceFault:     {event: true, notifyResolve: true, scopes: allScopes},
	lodestone.CondDeviceOffline:   {event: true, notifyResolve: true, scopes: allScopes},
	lodestone.CondCrashRegression: {event: true, scopes: allScopes},
	lodestone.CondCampaignHalted:  {event: true, scopes: []string{lodestone.ScopeFleet}},
	lodestone.CondNewCrashIssue:   {scopes: allScopes, window: 24 * time.Hour},
	lodestone.CondCrashIssueCount: {notifyResolve: true, scopes: allScopes, window: time.Hour},
	lodestone.CondCrashFreeRate: {notifyResolve: true, window: 24 * time.Hour,
		scopes: []string{lodestone.ScopeFleet, lodestone.ScopeGroup, lodestone.ScopeTag, lodestone.ScopeFirmware}},
	lodestone.CondDevicesOffline: {notifyResolve: true, scopes: allScopes},
	lodestone.CondMetric: {notifyResolve: true, window: time.Minute,
		scopes: []string{lodestone.ScopeFleet, lodestone.ScopeGroup, lodestone.ScopeTag, lodestone.ScopeDevice}},
}

// Conditions lists the condition names, for error messages and documentation.
var Conditions = []string{lodestone.CondDeviceFault, lodestone.CondDeviceOffline, lodestone.CondCrashRegression,
	lodestone.CondCampaignHalted, lodestone.CondNewCrashIssue, lodestone.CondCrashIssueCount,
	lodestone.CondCrashFreeRate, lodestone.CondDevicesOffline, lodestone.CondMetric}

// Limits of a rule.
const (
	MaxWebhooks    = 10
	MaxRuleName    = 100
	maxRuleWindow  = 90 * 24 * time.Hour
	defaultQuiet   = 30 * time.Minute // event conditions: how long without an event ends the alert
	minEventQuiet  = time.Second
	maxMetricName  = 200
	maxScopeValue  = 200
	redactedMarker = "…"
)

// DefaultRules are the rules ALERT_WEBHOOK_URL stands for: what lodestone sent before rules existed (faults,
// offline and back online, halted campaigns, crash regressions), except that a device's faults make one alert
// until it has been quiet for faultQuiet, instead of one per fault.
func DefaultRules(urls []string, faultQuiet time.Duration) []*lodestone.AlertRule {
	if len(urls) == 0 {
		return nil
	}
	mk := func(name, cond string, quiet time.Duration) *lodestone.AlertRule {
		return &lodestone.AlertRule{Name: name, Condition: cond, Scope: lodestone.AlertScope{Type: lodestone.ScopeFleet},
			Quiet: quiet, Webhooks: append([]string(nil), urls...), Enabled: true, Origin: lodestone.RuleFromConfig}
	}
	return []*lodestone.AlertRule{
		mk("default: device faults", lodestone.CondDeviceFault, faultQuiet),
		mk("default: device offline", lodestone.CondDeviceOffline, 0),
		mk("default: campaign halted", lodestone.CondCampaignHalted, defaultQuiet),
		mk("default: crash regression", lodestone.CondCrashRegression, defaultQuiet),
	}
}

// ValidateRule fills a rule's defaults (window, quiet period) and returns what is wrong with it, by JSON field;
// nil when it is valid.
func ValidateRule(r *lodestone.AlertRule) map[string]string {
	bad := map[string]string{}
	add := func(field, format string, args ...any) {
		if _, ok := bad[field]; !ok {
			bad[field] = fmt.Sprintf(format, args...)
		}
	}
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || len(r.Name) > MaxRuleName || strings.ContainsFunc(r.Name, isControl) {
		add("name", "must be 1-%d printable characters", MaxRuleName)
	}
	c, ok := conditions[r.Condition]
	if !ok {
		add("condition", "must be one of %s", strings.Join(Conditions, ", "))
	}
	if r.Scope.Type == "" {
		r.Scope.Type = lodestone.ScopeFleet
	}
	switch {
	case !slices.Contains(allScopes, r.Scope.Type):
		add("scope.type", "must be one of %s", strings.Join(allScopes, ", "))
	case ok && !slices.Contains(c.scopes, r.Scope.Type):
		add("scope.type", "%s rules take scope %s", r.Condition, strings.Join(c.scopes, ", "))
	case r.Scope.Type == lodestone.ScopeFleet && r.Scope.Value != "":
		add("scope.value", "must be empty for scope fleet")
	case r.Scope.Type != lodestone.ScopeFleet && (r.Scope.Value == "" || len(r.Scope.Value) > maxScopeValue):
		add("scope.value", "must name the %s (1-%d characters)", r.Scope.Type, maxScopeValue)
	}
	if len(r.Webhooks) == 0 || len(r.Webhooks) > MaxWebhooks {
		add("webhooks", "must list 1-%d webhook URLs", MaxWebhooks)
	}
	for i, h := range r.Webhooks {
		if strings.Contains(h, redactedMarker) {
			add(fmt.Sprintf("webhooks[%d]", i), "is a redacted URL as the API shows it; send the full URL")
		} else if u, err := url.Parse(h); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(fmt.Sprintf("webhooks[%d]", i), "must be an http:// or https:// URL")
		}
	}
	if !ok {
		return nilIfEmpty(bad)
	}
	// Durations.
	if r.Window == 0 {
		r.Window = c.window
	}
	switch {
	case c.window == 0 && r.Window != 0:
		add("window", "%s rules take no window", r.Condition)
	case r.Window < 0 || r.Window > maxRuleWindow:
		add("window", "must be between 0 and %s", maxRuleWindow)
	case r.Condition == lodestone.CondMetric && r.Scope.Type != lodestone.ScopeDevice && r.Window%time.Minute != 0:
		add("window", "must be whole minutes for a group, tag or fleet metric (fleet series are per minute)")
	}
	if r.For < 0 || r.For > maxRuleWindow {
		add("for", "must be between 0 and %s", maxRuleWindow)
	} else if r.For != 0 && r.Condition != lodestone.CondMetric {
		add("for", "only metric rules take a duration")
	}
	if c.event && r.Condition != lodestone.CondDeviceOffline && r.Quiet == 0 {
		r.Quiet = defaultQuiet
	}
	if r.Quiet < 0 || r.Quiet > maxRuleWindow {
		add("quiet_period", "must be between 0 and %s", maxRuleWindow)
	} else if c.event && r.Condition != lodestone.CondDeviceOffline && r.Quiet < minEventQuiet {
		add("quiet_period", "must be at least %s: it is how long without an event ends the alert", minEventQuiet)
	}
	validateThreshold(r, add)
	return nilIfEmpty(bad)
}

func validateThreshold(r *lodestone.AlertRule, add func(field, format string, args ...any)) {
	t := r.Threshold
	uses := map[string]bool{}
	switch r.Condition {
	case lodestone.CondCrashIssueCount:
		uses["occurrences"], uses["devices"] = true, true
		if t.Occurrences < 0 || t.Devices < 0 || t.Occurrences == 0 && t.Devices == 0 {
			add("threshold", "crash_issue_count needs occurrences or devices (a positive count)")
		}
	case lodestone.CondCrashFreeRate:
		uses["below"], uses["min_device_hours"] = true, true
		if t.Below == nil || *t.Below <= 0 || *t.Below > 100 {
			add("threshold.below", "crash_free_rate needs below: a crash-free percentage in (0, 100]")
		}
		if t.MinDeviceHours < 0 {
			add("threshold.min_device_hours", "must not be negative")
		}
	case lodestone.CondDevicesOffline:
		uses["count"], uses["percent"] = true, true
		if t.Count < 0 || t.Percent < 0 || t.Percent >= 100 || t.Count == 0 && t.Percent == 0 {
			add("threshold", "devices_offline needs count (devices) or percent (0-100, exclusive) of the scope")
		}
	case lodestone.CondMetric:
		uses["metric"], uses["above"], uses["below"] = true, true, true
		if t.Metric == "" || len(t.Metric) > maxMetricName {
			add("threshold.metric", "metric rules need the metric key (1-%d characters)", maxMetricName)
		}
		if (t.Above == nil) == (t.Below == nil) {
			add("threshold", "metric rules need exactly one of above and below")
		}
	}
	set := map[string]bool{"occurrences": t.Occurrences != 0, "devices": t.Devices != 0, "count": t.Count != 0,
		"percent": t.Percent != 0, "metric": t.Metric != "", "above": t.Above != nil, "below": t.Below != nil,
		"min_device_hours": t.MinDeviceHours != 0}
	for _, f := range []string{"occurrences", "devices", "count", "percent", "metric", "above", "below",
		"min_device_hours"} {
		if set[f] && !uses[f] {
			add("threshold."+f, "%s rules do not use %s", r.Condition, f)
		}
	}
}

func isControl(c rune) bool { return c < 0x20 || c == 0x7f }

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
