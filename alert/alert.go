// Package alert evaluates alert rules (lodestone.AlertRule) and posts webhooks when an alert fires and when it
// resolves, with ferrite-server's alert body made Slack- and Discord-compatible, an HMAC signature, and retries
// with exponential backoff from a queue table (lodestone.AlertStore), so a receiver that is down, or a restart,
// loses nothing queued.
//
// An alert is one rule's finding for one key (a device, a crash issue, a firmware version, the whole scope) with
// a state kept in the database (lodestone.AlertRuleStore): it is sent when it fires and when it resolves, never
// per event, so a device in a crash loop makes one alert. Every change of state is a conditional update of the
// state row that queues the deliveries in the same transaction, so replicas racing to make it send it once.
//
// Two parts run: Watch on every replica turns live events into alerts of event rules (device faults, offline
// devices, crash regressions, halted campaigns); Run on the one replica that leads the periodic jobs evaluates
// state rules (crash issues, crash-free rate, offline counts, metrics), resolves quiet event alerts, and sends
// what is due, claiming rows under a lease so a second sender that runs for a moment during a leadership change
// cannot send them again.
package alert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Config says where alerts go and how hard to try.
type Config struct {
	URLs           []string      // ALERT_WEBHOOK_URL: the webhooks of the default rules (DefaultRules)
	Secret         string        // HMAC-SHA256 key for the signature header; empty sends none
	OfflineMinutes int           // ALERT_OFFLINE_MINUTES, for the offline summary
	FaultQuiet     time.Duration // quiet period of the default fault rule; default 30 min

	Evaluate   time.Duration    // how often the leader evaluates state rules; default 30 s
	RulesEvery time.Duration    // how long Watch uses the rules it read before reading them again; default 1 s
	Now        func() time.Time // the clock; default time.Now

	Every       time.Duration // how often the sender looks for due deliveries; default 5 s
	Backoff     time.Duration // wait after the first failure, doubled after each; default 10 s
	MaxBackoff  time.Duration // longest wait between attempts; default 1 h
	MaxAttempts int           // attempts before a delivery is given up; default 15 (about 8 hours)
	Timeout     time.Duration // per attempt; default 10 s
	Batch       int           // deliveries claimed at once; default 20

	Client *http.Client // default: one with Timeout
	Logger *slog.Logger
}

// ParseURLs reads a comma-separated list of webhook URLs: absolute http or https URLs only.
func ParseURLs(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook %q: want an http:// or https:// URL", RedactURL(f))
		}
		out = append(out, f)
	}
	return out, nil
}

// RedactURL keeps a webhook URL's secret path (Slack and Discord put their token there) out of logs and errors.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func (c *Config) defaults() {
	if c.Every <= 0 {
		c.Every = 5 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 15
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 20
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OfflineMinutes <= 0 {
		c.OfflineMinutes = 10
	}
	if c.FaultQuiet <= 0 {
		c.FaultQuiet = 30 * time.Minute
	}
	if c.Evaluate <= 0 {
		c.Evaluate = 30 * time.Second
	}
	if c.RulesEvery <= 0 {
		c.RulesEvery = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// backoff is the wait before attempt n+1 after n failed attempts.
func (c *Config) backoff(failed int) time.Duration {
	d := c.Backoff
	for i := 1; i < failed && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// Body is the JSON posted: ferrite-server's fields in its order, plus content, which Discord reads (Slack reads
// text), and the alert's state and rule. timestamp is RFC 3339 UTC (ferrite sends "<unix seconds>Z", spec §8.22).
type Body struct {
	AlertType string         `json:"alert_type"`
	DeviceID  string         `json:"device_id"`
	Summary   string         `json:"summary"`
	Timestamp string         `json:"timestamp"`
	Details   map[string]any `json:"details"`
	Text      string         `json:"text"`
	Content   string         `json:"content"`
	State     string         `json:"state,omitempty"` // firing or resolved
	RuleID    int64          `json:"rule_id,omitempty"`
	Rule      string         `json:"rule,omitempty"`
	Key       string         `json:"alert_key,omitempty"` // what the alert is about within the rule
}

// ferriteTime is ferrite's timestamp text, as its read API shows last_seen.
func ferriteTime(t time.Time) string { return t.UTC().Format(time.DateTime) }

// message is an alert's content before it is addressed: the same text goes to every webhook of the rule.
type message struct {
	kind, device, summary, icon string
	details                     map[string]any
}

// body renders m as the JSON posted for rule r's alert key in state at at.
func (m message) body(r *lodestone.AlertRule, key, state string, at time.Time) []byte {
	text := m.icon + " " + m.summary
	b, _ := json.Marshal(Body{AlertType: m.kind, DeviceID: m.device, Summary: m.summary,
		Timestamp: at.UTC().Format(time.RFC3339), Details: m.details, Text: text, Content: text, State: state,
		RuleID: r.ID, Rule: r.Name, Key: key})
	return b
}

// faultMsg is the alert for a stored fault. The symbol is not known yet when the fault arrives (symbolication
// runs afterwards), so it is "unknown" as in ferrite when addr2line fails.
func faultMsg(device string, faultType uint8, pc uint32) message {
	pcs := fmt.Sprintf("0x%08X", pc)
	return message{lodestone.AlertFault, device,
		fmt.Sprintf("Fault on device %s: type=%d, pc=%s (unknown)", device, faultType, pcs), ":warning:",
		map[string]any{"fault_type": faultType, "pc": pcs, "symbol": nil}}
}

// faultQuietMsg resolves a device's fault alert: no fault for the quiet period.
func faultQuietMsg(device string, quiet time.Duration, faults int64, since time.Time) message {
	return message{lodestone.AlertFault, device,
		fmt.Sprintf("Device %s: no fault for %s (%d faults since %s)", device, quiet, faults, ferriteTime(since)),
		":white_check_mark:", map[string]any{"faults": faults, "firing_since": ferriteTime(since)}}
}

// offlineMsg is the alert for a device that went silent.
func offlineMsg(device string, lastSeen time.Time, minutes int) message {
	ls := ferriteTime(lastSeen)
	return message{lodestone.AlertDeviceOffline, device,
		fmt.Sprintf("Device %s offline for >%d minutes (last seen: %s)", device, minutes, ls), ":red_circle:",
		map[string]any{"last_seen": ls, "offline_threshold_minutes": minutes}}
}

// onlineMsg is the alert for a device heard from again after its offline alert.
func onlineMsg(device string, offlineAt time.Time) message {
	since := ferriteTime(offlineAt)
	return message{lodestone.AlertDeviceOnline, device,
		fmt.Sprintf("Device %s back online (offline since %s)", device, since), ":large_green_circle:",
		map[string]any{"offline_since": since}}
}

// campaignHaltMsg is the alert for a rollout that stopped itself.
func campaignHaltMsg(id int64, name, reason string) message {
	return message{lodestone.AlertCampaignHalt, "",
		fmt.Sprintf("OTA campaign #%d %q halted: %s", id, name, reason), ":octagonal_sign:",
		map[string]any{"campaign_id": id, "name": name, "reason": reason}}
}

// regressionMsg is the alert for a resolved crash issue that happened again on newer firmware.
func regressionMsg(device string, group int64, title, firmware, resolvedIn string) message {
	return message{lodestone.AlertRegression, device,
		fmt.Sprintf("Crash issue #%d regressed on firmware %s (resolved in %s): %s", group, firmware, resolvedIn,
			title), ":rotating_light:",
		map[string]any{"crash_group_id": group, "title": title, "firmware_version": firmware,
			"resolved_version": resolvedIn}}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// unwrapNet strips the url.Error wrapper (which quotes the URL) from a client error.
func unwrapNet(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
