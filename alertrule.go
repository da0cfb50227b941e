package lodestone

import (
	"context"
	"time"
)

// Alert rule conditions. Event conditions fire on an event (a fault, an offline device, a regression, a halted
// campaign); state conditions are evaluated periodically against the store by the replica that leads.
const (
	CondDeviceFault     = "device_fault"      // event: a device in scope faulted; one alert per device
	CondDeviceOffline   = "device_offline"    // event: a device in scope went offline; resolves when it is back
	CondCrashRegression = "crash_regression"  // event: a resolved crash issue came back on newer firmware
	CondCampaignHalted  = "campaign_halted"   // event: an OTA campaign's health gate stopped it
	CondNewCrashIssue   = "new_crash_issue"   // state: a crash issue first seen since the rule exists
	CondCrashIssueCount = "crash_issue_count" // state: an issue above N occurrences or M devices in the window
	CondCrashFreeRate   = "crash_free_rate"   // state: a firmware version's crash-free hours below X percent
	CondDevicesOffline  = "devices_offline"   // state: offline devices in scope above N or a percentage
	CondMetric          = "metric"            // state: a metric of a device or group above/below a value for a duration
)

// Alert rule scopes: which devices a rule looks at.
const (
	ScopeFleet    = "fleet"
	ScopeGroup    = "group"    // Value: group name
	ScopeTag      = "tag"      // Value: device tag
	ScopeDevice   = "device"   // Value: device_id
	ScopeFirmware = "firmware" // Value: firmware version
)

// Alert rule origins: rules made through the API, and the default rules that ALERT_WEBHOOK_URL stands for.
const (
	RuleFromAPI    = "api"
	RuleFromConfig = "config"
)

// AlertScope narrows a rule to part of the fleet.
type AlertScope struct {
	Type  string `json:"type"`
	Value string `json:"value,omitempty"`
}

// AlertThreshold holds the numbers a condition compares with; each condition reads its own fields.
type AlertThreshold struct {
	Occurrences    int      `json:"occurrences,omitempty"`      // crash_issue_count: more than this many faults
	Devices        int      `json:"devices,omitempty"`          // crash_issue_count: on more than this many devices
	Count          int      `json:"count,omitempty"`            // devices_offline: more than this many devices
	Percent        float64  `json:"percent,omitempty"`          // devices_offline: more than this share of the scope
	Metric         string   `json:"metric,omitempty"`           // metric: the metric key
	Above          *float64 `json:"above,omitempty"`            // metric: fires above this value
	Below          *float64 `json:"below,omitempty"`            // metric, crash_free_rate: fires below this value
	MinDeviceHours float64  `json:"min_device_hours,omitempty"` // crash_free_rate: versions observed less are skipped
}

// AlertRule says when to alert and where to.
type AlertRule struct {
	ID        int64
	Name      string
	Condition string
	Scope     AlertScope
	Threshold AlertThreshold
	Window    time.Duration // the range counted (crash issues, crash-free rate) or averaged (metric)
	For       time.Duration // metric: how long the condition must hold before the alert fires
	// Quiet ends an event alert once no matching event came for this long; a resolved state alert does not
	// fire again within it (so a flapping condition does not flood the channel either).
	Quiet     time.Duration
	Webhooks  []string
	Enabled   bool
	Origin    string // RuleFromAPI or RuleFromConfig
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Alert states. An alert is one rule's finding for one key (a device, an issue, a version, or the whole scope).
const (
	AlertNone     = ""         // never seen: no state row
	AlertOK       = "ok"       // the condition held briefly (pending) and cleared before firing
	AlertPending  = "pending"  // the condition holds, not yet for the rule's For
	AlertFiring   = "firing"   // sent as firing
	AlertResolved = "resolved" // sent as resolved (or, for one-shot conditions, quiet again)
)

// Alert is the state of one rule for one key.
type Alert struct {
	RuleID     int64
	Key        string
	Status     string
	Since      time.Time // when it entered Status
	LastEvent  time.Time // the latest matching event or breach while firing
	Events     int64     // matching events since it fired (events at the same millisecond count once)
	FiredAt    time.Time // zero: never fired
	ResolvedAt time.Time // zero: never resolved
	Value      float64   // the reading that fired it
	Summary    string
}

// AlertTransition moves one alert to To if its state is still one of From; replicas racing to make the same
// transition all try and exactly one succeeds, and only that one queues the deliveries.
type AlertTransition struct {
	RuleID int64
	Key    string
	From   []string // AlertNone allows an alert that has no state yet
	To     string
	At     time.Time
	// ResolvedBefore, when set, refuses an alert that resolved after it (the rule's quiet period).
	ResolvedBefore time.Time
	// IdleBefore, when set, refuses an alert whose last event is after it.
	IdleBefore time.Time
	Value      float64
	Summary    string
	Deliveries []*AlertDelivery // queued in the same transaction, only if the transition happened
}

// AlertStateFilter selects alert states, most recently changed first.
type AlertStateFilter struct {
	RuleID int64  // 0: any
	Status string // "": any
	Limit  int
}

// CrashActivity is one crash issue's faults within a window and scope.
type CrashActivity struct {
	IssueID     int64
	Title       string
	State       CrashState
	FirstSeen   time.Time
	Occurrences int64
	Devices     int64
}

// AlertRuleStore keeps alert rules and alert states, and answers the questions state conditions ask.
type AlertRuleStore interface {
	// CreateAlertRule stores r and sets ID and times; a taken name is ECONFLICT.
	CreateAlertRule(ctx context.Context, r *AlertRule) error
	// UpdateAlertRule replaces the rule r.ID (keeping Origin and CreatedAt); ENOTFOUND, or ECONFLICT for a taken name.
	UpdateAlertRule(ctx context.Context, r *AlertRule) error
	// DeleteAlertRule removes a rule and its alert states; ENOTFOUND when it does not exist.
	DeleteAlertRule(ctx context.Context, id int64) error
	FindAlertRule(ctx context.Context, id int64) (*AlertRule, error)
	// FindAlertRules lists every rule by id.
	FindAlertRules(ctx context.Context) ([]*AlertRule, error)
	// SyncAlertRules makes origin's rules exactly rules (matched by name): new ones are created, changed ones
	// updated, missing ones deleted. Replicas that start together may all call it.
	SyncAlertRules(ctx context.Context, origin string, rules []*AlertRule) error

	FindAlerts(ctx context.Context, f AlertStateFilter) ([]*Alert, error)
	// TransitionAlert makes the transition if the alert is still in one of t.From and reports whether it did.
	TransitionAlert(ctx context.Context, t AlertTransition) (bool, error)
	// TouchAlert records a matching event at at on a firing alert and reports whether the alert is firing. An
	// event no newer than the alert's last one (the same event seen by another replica) is not counted again.
	TouchAlert(ctx context.Context, ruleID int64, key string, at time.Time) (bool, error)

	// AlertDeviceInScope reports whether the device with the given device_id is in scope.
	AlertDeviceInScope(ctx context.Context, deviceID string, sc AlertScope) (bool, error)
	// AlertScopeDevices counts the devices in scope and those of them offline.
	AlertScopeDevices(ctx context.Context, sc AlertScope) (total, offline int64, err error)
	// AlertCrashActivity counts each crash issue's faults received in [from, to) from devices in scope (a
	// firmware scope matches the firmware the fault came in on).
	AlertCrashActivity(ctx context.Context, sc AlertScope, from, to time.Time) ([]CrashActivity, error)
}
