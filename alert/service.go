package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Signature headers. The signature is hex HMAC-SHA256 over "<timestamp>.<body>" with the configured secret, so a
// receiver can check both the sender and the freshness (and drop replays) the way Stripe and Slack signatures work.
const (
	HeaderSignature = "X-Lodestone-Signature" // "sha256=<hex>"
	HeaderTimestamp = "X-Lodestone-Timestamp" // Unix seconds of this attempt
	HeaderDelivery  = "X-Lodestone-Delivery"  // the delivery id, the same on every retry, for receivers to dedupe
)

// Sign returns the value of the signature header for body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(itoa(ts)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Store is what the service needs of the database. A store that also implements lodestone.SeriesReader,
// lodestone.StabilityReader and lodestone.GroupService can evaluate metric and crash-free-rate rules.
type Store interface {
	lodestone.AlertStore
	lodestone.AlertRuleStore
}

// Service evaluates rules, and queues and sends alerts.
type Service struct {
	cfg     Config
	store   Store
	devices lodestone.DeviceService
	events  lodestone.EventBus
	wake    chan struct{}
	now     func() time.Time

	synced  atomic.Bool // the default rules are in the database
	mu      sync.Mutex
	rules   []*lodestone.AlertRule // Watch's copy
	rulesAt time.Time

	evalMu   sync.Mutex // Run's loop and callers of Tick may tick at once
	lastEval time.Time

	watching     chan struct{} // closed once Watch has subscribed, or found no event rule to subscribe for
	watchingOnce sync.Once
}

// New returns the service. events may be nil (no event rules, no device_online events).
func New(cfg Config, store Store, devices lodestone.DeviceService, events lodestone.EventBus) *Service {
	cfg.defaults()
	return &Service{cfg: cfg, store: store, devices: devices, events: events, wake: make(chan struct{}, 1),
		now: cfg.Now, watching: make(chan struct{})}
}

// Watching is closed once Watch has made its first subscription, or has found that no enabled rule needs one (or
// could not tell). A server waits for it before it accepts traffic: producers build no events while nobody
// subscribes, so a fault that arrived before the subscription would never be alerted.
func (s *Service) Watching() <-chan struct{} { return s.watching }

func (s *Service) watchStarted() { s.watchingOnce.Do(func() { close(s.watching) }) }

// SyncDefaults makes the database's default rules those of Config.URLs (none when it is empty), once per
// process; Watch and Run call it. Replicas that start together all do, which is harmless.
func (s *Service) SyncDefaults(ctx context.Context) error {
	if s.synced.Load() {
		return nil
	}
	if err := s.store.SyncAlertRules(ctx, lodestone.RuleFromConfig,
		DefaultRules(s.cfg.URLs, s.cfg.FaultQuiet)); err != nil {
		return fmt.Errorf("alert: default rules from ALERT_WEBHOOK_URL: %w", err)
	}
	s.synced.Store(true)
	return nil
}

// deliveries makes one delivery of m per webhook of r.
func (s *Service) deliveries(r *lodestone.AlertRule, key, state string, m message, at time.Time) []*lodestone.AlertDelivery {
	body := m.body(r, key, state, at)
	dedup := "rule:" + itoa(r.ID) + ":" + key + ":" + state + ":" + itoa(at.UnixMilli())
	out := make([]*lodestone.AlertDelivery, 0, len(r.Webhooks))
	for _, u := range r.Webhooks {
		// Queued now on the wall clock (when it is due); at, the alert's time, is in the body.
		out = append(out, &lodestone.AlertDelivery{Kind: m.kind, DeviceID: m.device, URL: u, Body: body,
			DedupKey: dedup, CreatedAt: time.Now()})
	}
	return out
}

// Watch turns fault, device_offline, ota_campaign_halted and crash_regression events into alerts of the event
// rules until ctx ends. Run it on every replica: each replica sees each event, and the alert's state row lets
// exactly one of them fire it. It subscribes only while an event rule is enabled, since a subscriber makes the
// PostgreSQL bus write the ingest stream (a rule made later takes effect within RulesEvery). Events published
// while no replica watches (all down) are not alerted.
func (s *Service) Watch(ctx context.Context) error {
	if s.events == nil {
		s.watchStarted()
		return nil
	}
	defer s.watchStarted() // ctx ended or the bus refused before the first subscription
	if err := s.SyncDefaults(ctx); err != nil {
		s.cfg.Logger.Error("alert rules", "err", err)
	}
	var after int64
	for ctx.Err() == nil {
		if on, err := s.eventRules(ctx); err != nil || !on {
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("alert rules", "err", err)
			}
			after = 0 // from now when a rule appears: nothing older is alerted
			s.watchStarted()
			select {
			case <-ctx.Done():
			case <-time.After(s.cfg.RulesEvery):
			}
			continue
		}
		sub, cancel := context.WithCancel(ctx)
		ch, err := s.events.Subscribe(sub, after)
		if err != nil {
			cancel()
			return fmt.Errorf("alert: subscribe to events: %w", err)
		}
		s.watchStarted()
		for e := range ch {
			after = e.ID
			if err := s.handle(ctx, e); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("alerting on an event failed", "event", e.Type, "device_id", e.DeviceID, "err", err)
			}
			if on, err := s.eventRules(ctx); err == nil && !on {
				cancel() // the last event rule went: stop costing the bus anything
			}
		}
		cancel()
		// The bus dropped this subscriber for lagging (or closed), or no event rule is left: resume after the
		// last event handled.
	}
	return nil
}

// eventRules reports whether any enabled rule has an event condition.
func (s *Service) eventRules(ctx context.Context) (bool, error) {
	for cond, c := range conditions {
		if !c.event {
			continue
		}
		rules, err := s.rulesFor(ctx, cond)
		if err != nil || len(rules) > 0 {
			return len(rules) > 0, err
		}
	}
	return false, nil
}

// rulesFor returns the enabled rules of a condition, from a copy at most RulesEvery old.
func (s *Service) rulesFor(ctx context.Context, cond string) ([]*lodestone.AlertRule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rules == nil || time.Since(s.rulesAt) >= s.cfg.RulesEvery {
		rules, err := s.store.FindAlertRules(ctx)
		if err != nil {
			return nil, err
		}
		s.rules, s.rulesAt = rules, time.Now()
	}
	var out []*lodestone.AlertRule
	for _, r := range s.rules {
		if r.Enabled && r.Condition == cond {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *Service) handle(ctx context.Context, e lodestone.Event) error {
	at := e.Time
	if at.IsZero() {
		at = s.now()
	}
	var cond, key, firmware string
	var msg func() message
	switch e.Type {
	case lodestone.EventFault:
		var d struct {
			FaultType uint8  `json:"fault_type"`
			PC        string `json:"pc"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("fault event: %w", err)
		}
		pc, _ := strconv.ParseUint(d.PC, 0, 32)
		cond, key = lodestone.CondDeviceFault, e.DeviceID
		msg = func() message { return faultMsg(e.DeviceID, d.FaultType, uint32(pc)) }
	case lodestone.EventDeviceOffline:
		cond, key = lodestone.CondDeviceOffline, e.DeviceID
		msg = func() message {
			lastSeen := at
			if dev, err := s.devices.FindDeviceByID(ctx, e.DeviceID); err == nil {
				lastSeen = dev.LastSeen
			}
			return offlineMsg(e.DeviceID, lastSeen, s.cfg.OfflineMinutes)
		}
	case lodestone.AlertCampaignHalt:
		var d struct {
			CampaignID int64  `json:"campaign_id"`
			Name       string `json:"name"`
			Reason     string `json:"reason"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("campaign event: %w", err)
		}
		cond, key = lodestone.CondCampaignHalted, "campaign:"+itoa(d.CampaignID)
		msg = func() message { return campaignHaltMsg(d.CampaignID, d.Name, d.Reason) }
	case lodestone.AlertRegression:
		var d struct {
			GroupID         int64  `json:"crash_group_id"`
			Title           string `json:"title"`
			FirmwareVersion string `json:"firmware_version"`
			ResolvedVersion string `json:"resolved_version"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("regression event: %w", err)
		}
		cond, key, firmware = lodestone.CondCrashRegression, "issue:"+itoa(d.GroupID), d.FirmwareVersion
		msg = func() message {
			return regressionMsg(e.DeviceID, d.GroupID, d.Title, d.FirmwareVersion, d.ResolvedVersion)
		}
	default:
		return nil
	}
	rules, err := s.rulesFor(ctx, cond)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rules {
		if in, err := s.eventInScope(ctx, r.Scope, e.DeviceID, firmware); err != nil || !in {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.fireEvent(ctx, r, key, at, msg))
	}
	return errors.Join(errs...)
}

// eventInScope reports whether an event of device (with firmware, when the event names it) is in scope.
func (s *Service) eventInScope(ctx context.Context, sc lodestone.AlertScope, device, firmware string) (bool, error) {
	switch {
	case sc.Type == lodestone.ScopeFleet:
		return true, nil
	case sc.Type == lodestone.ScopeFirmware && firmware != "":
		return firmware == sc.Value, nil
	case device == "":
		return false, nil
	}
	return s.store.AlertDeviceInScope(ctx, device, sc)
}

// fireEvent counts an event on the alert of rule r for key, firing the alert if it is not firing yet.
func (s *Service) fireEvent(ctx context.Context, r *lodestone.AlertRule, key string, at time.Time,
	msg func() message) error {
	if firing, err := s.store.TouchAlert(ctx, r.ID, key, at); err != nil || firing {
		return err
	}
	m := msg()
	t := lodestone.AlertTransition{RuleID: r.ID, Key: key, At: at, To: lodestone.AlertFiring, Value: 1,
		From:    []string{lodestone.AlertNone, lodestone.AlertOK, lodestone.AlertResolved},
		Summary: m.summary, Deliveries: s.deliveries(r, key, lodestone.AlertFiring, m, at)}
	if r.Condition == lodestone.CondDeviceOffline {
		t.ResolvedBefore = at.Add(-r.Quiet) // its quiet period guards against a flapping device
	}
	fired, err := s.store.TransitionAlert(ctx, t)
	if err != nil {
		return err
	}
	if fired {
		s.Wake()
		return nil
	}
	// Another replica fired it a moment ago: this event still counts.
	_, err = s.store.TouchAlert(ctx, r.ID, key, at)
	return err
}

// Wake makes a running sender look for due deliveries now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run is the leader's loop: a Tick every Every, or when woken. It returns when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("alert sender", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Tick does one round: the event rules' firing alerts (devices back, quiet alerts), the state rules when their
// evaluation is due, then every due delivery.
func (s *Service) Tick(ctx context.Context) error {
	if err := s.SyncDefaults(ctx); err != nil {
		return err
	}
	now := s.now()
	s.evalMu.Lock()
	states := now.Sub(s.lastEval) >= s.cfg.Evaluate || now.Before(s.lastEval)
	if states {
		s.lastEval = now
	}
	s.evalMu.Unlock()
	return errors.Join(s.evaluate(ctx, states), s.SendDue(ctx))
}

// SendDue sends every due delivery.
func (s *Service) SendDue(ctx context.Context) error {
	for ctx.Err() == nil {
		// The lease covers the whole batch sent one after another, so it cannot run out mid-batch.
		lease := time.Duration(s.cfg.Batch)*s.cfg.Timeout + time.Minute
		due, err := s.store.ClaimAlerts(ctx, time.Now(), lease, s.cfg.Batch)
		if err != nil {
			return err
		}
		for _, d := range due {
			s.send(ctx, d)
		}
		if len(due) < s.cfg.Batch {
			return nil
		}
	}
	return nil
}

// send makes one attempt and records it.
func (s *Service) send(ctx context.Context, d *lodestone.AlertDelivery) {
	status, err := s.post(ctx, d)
	now := time.Now() // deliveries run on the wall clock, whatever clock the rules are evaluated on
	var next time.Time
	if err != nil {
		if d.Attempts+1 < s.cfg.MaxAttempts {
			next = now.Add(s.cfg.backoff(d.Attempts + 1))
		}
		s.cfg.Logger.Warn("alert delivery failed", "id", d.ID, "kind", d.Kind, "device_id", d.DeviceID,
			"webhook", RedactURL(d.URL), "attempt", d.Attempts+1, "status", status, "err", err, "retry_at", next)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	// Recorded even if ctx ended (shutdown): the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := s.store.FinishAlert(rctx, d.ID, err == nil, status, msg, now, next); ferr != nil {
		s.cfg.Logger.Error("recording an alert attempt failed", "id", d.ID, "err", ferr)
	}
}

func (s *Service) post(ctx context.Context, d *lodestone.AlertDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lodestone-alerts")
	req.Header.Set(HeaderDelivery, itoa(d.ID))
	if s.cfg.Secret != "" {
		ts := time.Now().Unix()
		req.Header.Set(HeaderTimestamp, itoa(ts))
		req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, ts, d.Body))
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL, which may carry the webhook's token: say only what kind of failure it was.
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no answer within %s", s.cfg.Timeout)
		}
		return 0, fmt.Errorf("request failed: %s", unwrapNet(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
