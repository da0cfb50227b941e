package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// reading is what a state condition found for one key at one evaluation.
type reading struct {
	breach bool
	value  float64
	msg    message
}

// Evaluate checks every enabled rule once, at the service's clock: state rules against the store, event rules
// for alerts that have gone quiet (or, for device_offline, devices back online). The leader runs it.
func (s *Service) Evaluate(ctx context.Context) error { return s.evaluate(ctx, true) }

// evaluate checks the event rules, and the state rules too when states is set: the first are cheap (their firing
// alerts only), the second query the store.
func (s *Service) evaluate(ctx context.Context, states bool) error {
	rules, err := s.store.FindAlertRules(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	var errs []error
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		var err error
		switch r.Condition {
		case lodestone.CondDeviceOffline:
			err = s.resolveReturned(ctx, r, now)
		case lodestone.CondDeviceFault, lodestone.CondCrashRegression, lodestone.CondCampaignHalted:
			err = s.resolveQuiet(ctx, r, now)
		case lodestone.CondNewCrashIssue:
			if states {
				err = s.newIssues(ctx, r, now)
			}
			err = errors.Join(err, s.resolveQuiet(ctx, r, now))
		default:
			if !states {
				continue
			}
			var rd map[string]reading
			if rd, err = s.read(ctx, r, now); err == nil {
				err = s.apply(ctx, r, rd, now)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%s): %w", r.ID, r.Name, err))
		}
	}
	return errors.Join(errs...)
}

// resolveQuiet resolves the alerts of an event rule that saw no event for the rule's quiet period.
func (s *Service) resolveQuiet(ctx context.Context, r *lodestone.AlertRule, now time.Time) error {
	firing, err := s.store.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID, Status: lodestone.AlertFiring})
	if err != nil {
		return err
	}
	idle := now.Add(-r.Quiet)
	for _, a := range firing {
		if a.LastEvent.After(idle) {
			continue
		}
		t := lodestone.AlertTransition{RuleID: r.ID, Key: a.Key, From: []string{lodestone.AlertFiring},
			To: lodestone.AlertResolved, At: now, IdleBefore: idle, Value: a.Value, Summary: a.Summary}
		if r.Condition == lodestone.CondDeviceFault {
			m := faultQuietMsg(a.Key, r.Quiet, a.Events, a.FiredAt)
			t.Summary, t.Deliveries = m.summary, s.deliveries(r, a.Key, lodestone.AlertResolved, m, now)
		}
		if _, err := s.store.TransitionAlert(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// resolveReturned resolves the offline alerts of devices online again, with the back-online webhook and a
// device_online event.
func (s *Service) resolveReturned(ctx context.Context, r *lodestone.AlertRule, now time.Time) error {
	firing, err := s.store.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID, Status: lodestone.AlertFiring})
	if err != nil {
		return err
	}
	for _, a := range firing {
		dev, err := s.devices.FindDeviceByID(ctx, a.Key)
		gone := lodestone.ErrorCode(err) == lodestone.ENOTFOUND
		if err != nil && !gone {
			return err
		}
		if !gone && dev.Status != lodestone.StatusOnline {
			continue
		}
		t := lodestone.AlertTransition{RuleID: r.ID, Key: a.Key, From: []string{lodestone.AlertFiring},
			To: lodestone.AlertResolved, At: now, Summary: "device deleted"}
		if !gone {
			m := onlineMsg(a.Key, a.FiredAt)
			t.Summary, t.Deliveries = m.summary, s.deliveries(r, a.Key, lodestone.AlertResolved, m, now)
		}
		done, err := s.store.TransitionAlert(ctx, t)
		if err != nil {
			return err
		}
		if done && !gone && s.events != nil {
			d, _ := json.Marshal(map[string]string{"device_id": a.Key})
			if err := s.events.Publish(ctx, lodestone.Event{Type: lodestone.EventDeviceOnline, DeviceID: a.Key,
				Data: d}); err != nil {
				s.cfg.Logger.Warn("publishing device_online failed", "device_id", a.Key, "err", err)
			}
		}
	}
	return nil
}

// newIssues fires once for each crash issue first seen since the rule exists (and within its window) on a
// device in scope. Muted issues are skipped.
func (s *Service) newIssues(ctx context.Context, r *lodestone.AlertRule, now time.Time) error {
	since := now.Add(-r.Window)
	if r.CreatedAt.After(since) {
		since = r.CreatedAt
	}
	acts, err := s.store.AlertCrashActivity(ctx, r.Scope, since, now.Add(time.Millisecond))
	if err != nil {
		return err
	}
	for _, a := range acts {
		if a.FirstSeen.Before(since) || a.State == lodestone.CrashMuted {
			continue
		}
		key := "issue:" + itoa(a.IssueID)
		m := message{kind: lodestone.CondNewCrashIssue, icon: ":new:",
			summary: fmt.Sprintf("New crash issue #%d: %s (%d occurrences on %d devices)", a.IssueID, a.Title,
				a.Occurrences, a.Devices),
			details: map[string]any{"crash_group_id": a.IssueID, "title": a.Title, "occurrences": a.Occurrences,
				"devices": a.Devices}}
		// Only an issue never alerted fires: after the quiet period the alert resolves silently for good.
		if _, err := s.store.TransitionAlert(ctx, lodestone.AlertTransition{RuleID: r.ID, Key: key,
			From: []string{lodestone.AlertNone}, To: lodestone.AlertFiring, At: now, Value: float64(a.Occurrences),
			Summary: m.summary, Deliveries: s.deliveries(r, key, lodestone.AlertFiring, m, now)}); err != nil {
			return err
		}
	}
	return nil
}

// read evaluates a state condition: a reading per key, breaching or not.
func (s *Service) read(ctx context.Context, r *lodestone.AlertRule, now time.Time) (map[string]reading, error) {
	out := map[string]reading{}
	t := r.Threshold
	switch r.Condition {
	case lodestone.CondCrashIssueCount:
		acts, err := s.store.AlertCrashActivity(ctx, r.Scope, now.Add(-r.Window), now.Add(time.Millisecond))
		if err != nil {
			return nil, err
		}
		for _, a := range acts {
			if a.State == lodestone.CrashMuted {
				continue
			}
			breach := t.Occurrences > 0 && a.Occurrences > int64(t.Occurrences) ||
				t.Devices > 0 && a.Devices > int64(t.Devices)
			out["issue:"+itoa(a.IssueID)] = reading{breach: breach, value: float64(a.Occurrences), msg: message{
				kind: lodestone.CondCrashIssueCount, icon: ":rotating_light:",
				summary: fmt.Sprintf("Crash issue #%d (%s): %d occurrences on %d devices in the last %s%s",
					a.IssueID, a.Title, a.Occurrences, a.Devices, r.Window, scopeText(r.Scope)),
				details: map[string]any{"crash_group_id": a.IssueID, "title": a.Title, "occurrences": a.Occurrences,
					"devices": a.Devices, "window": r.Window.String()}}}
		}
	case lodestone.CondCrashFreeRate:
		sr, ok := s.store.(lodestone.StabilityReader)
		if !ok {
			return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this store does not compute stability")
		}
		q := lodestone.StabilityQuery{From: now.Add(-r.Window), To: now}
		switch r.Scope.Type {
		case lodestone.ScopeGroup:
			q.Group = r.Scope.Value
		case lodestone.ScopeTag:
			q.Tag = r.Scope.Value
		case lodestone.ScopeFirmware:
			q.Versions = []string{r.Scope.Value}
		}
		rep, err := sr.Stability(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, v := range rep.Versions {
			if v.DeviceHours <= 0 || v.DeviceHours < t.MinDeviceHours ||
				r.Scope.Type == lodestone.ScopeFirmware && v.Version != r.Scope.Value {
				continue
			}
			out["version:"+v.Version] = reading{breach: v.CrashFreeHoursPct < *t.Below, value: v.CrashFreeHoursPct,
				msg: message{kind: lodestone.CondCrashFreeRate, icon: ":chart_with_downwards_trend:",
					summary: fmt.Sprintf("Firmware %s: %.2f%% crash-free hours over the last %s (threshold %g%%, "+
						"%.1f device-hours, %d faults)%s", v.Version, v.CrashFreeHoursPct, r.Window, *t.Below,
						v.DeviceHours, v.Faults, scopeText(r.Scope)),
					details: map[string]any{"firmware_version": v.Version, "crash_free_hours_pct": v.CrashFreeHoursPct,
						"device_hours": v.DeviceHours, "faults": v.Faults, "devices": v.Devices}}}
		}
	case lodestone.CondDevicesOffline:
		total, off, err := s.store.AlertScopeDevices(ctx, r.Scope)
		if err != nil {
			return nil, err
		}
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(off) / float64(total)
		}
		breach := t.Count > 0 && off > int64(t.Count) || t.Percent > 0 && pct > t.Percent
		out["scope"] = reading{breach: breach, value: float64(off), msg: message{kind: lodestone.CondDevicesOffline,
			icon: ":red_circle:", summary: fmt.Sprintf("%d of %d devices offline (%.1f%%)%s", off, total, pct,
				scopeText(r.Scope)),
			details: map[string]any{"offline": off, "devices": total, "percent": pct}}}
	case lodestone.CondMetric:
		v, ok, err := s.metricValue(ctx, r, now)
		if err != nil || !ok {
			return out, err // no samples in the window: neither breaching nor clear
		}
		op, limit, breach := "above", 0.0, false
		if t.Above != nil {
			limit, breach = *t.Above, v > *t.Above
		} else {
			op, limit, breach = "below", *t.Below, v < *t.Below
		}
		device := ""
		if r.Scope.Type == lodestone.ScopeDevice {
			device = r.Scope.Value
		}
		out["scope"] = reading{breach: breach, value: v, msg: message{kind: lodestone.CondMetric, device: device,
			icon: ":thermometer:", summary: fmt.Sprintf("%s averaged %g over the last %s (alert %s %g for %s)%s",
				t.Metric, v, r.Window, op, limit, r.For, scopeText(r.Scope)),
			details: map[string]any{"metric": t.Metric, "value": v, op: limit, "for": r.For.String()}}}
	default:
		return nil, fmt.Errorf("unknown condition %q", r.Condition)
	}
	return out, nil
}

// metricValue averages a metric's samples over the rule's window: the device's, or the fleet's within the
// scope. ok is false when there are none.
func (s *Service) metricValue(ctx context.Context, r *lodestone.AlertRule, now time.Time) (float64, bool, error) {
	sr, ok := s.store.(lodestone.SeriesReader)
	if !ok {
		return 0, false, lodestone.Errorf(lodestone.EUNAVAILABLE, "this store does not compute metric series")
	}
	q := lodestone.SeriesQuery{Key: r.Threshold.Metric, From: now.Add(-r.Window), To: now, Step: r.Window}
	switch r.Scope.Type {
	case lodestone.ScopeDevice:
		q.DeviceIDs = []string{r.Scope.Value}
	case lodestone.ScopeTag:
		q.Fleet, q.Tag = true, r.Scope.Value
	case lodestone.ScopeGroup:
		gs, ok := s.store.(lodestone.GroupService)
		if !ok {
			return 0, false, lodestone.Errorf(lodestone.EUNAVAILABLE, "this store has no groups")
		}
		groups, err := gs.FindGroups(ctx)
		if err != nil {
			return 0, false, err
		}
		for _, g := range groups {
			if g.Name == r.Scope.Value {
				q.GroupID = g.ID
			}
		}
		if q.GroupID == 0 {
			return 0, false, nil // no such group (yet): nothing to measure
		}
		q.Fleet = true
	default:
		q.Fleet = true
	}
	series, err := sr.MetricSeries(ctx, q)
	if err != nil {
		return 0, false, err
	}
	var sum float64
	var n int64
	for _, se := range series {
		for _, b := range se.Buckets {
			sum += b.Avg * float64(b.Count)
			n += b.Count
		}
	}
	if n == 0 {
		return 0, false, nil
	}
	return sum / float64(n), true, nil
}

// apply moves the alerts of a state rule by this evaluation's readings: a breach fires (after For, through
// pending), a clear resolves, and a resolved alert stays quiet for the rule's quiet period.
func (s *Service) apply(ctx context.Context, r *lodestone.AlertRule, rd map[string]reading, now time.Time) error {
	states, err := s.store.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID})
	if err != nil {
		return err
	}
	cur := map[string]*lodestone.Alert{}
	for _, a := range states {
		cur[a.Key] = a
	}
	notify := conditions[r.Condition].notifyResolve
	for key, x := range rd {
		a := cur[key]
		status := lodestone.AlertNone
		if a != nil {
			status = a.Status
		}
		t := lodestone.AlertTransition{RuleID: r.ID, Key: key, At: now, Value: x.value, Summary: x.msg.summary}
		switch {
		case !x.breach && status == lodestone.AlertPending:
			t.From, t.To = []string{lodestone.AlertPending}, lodestone.AlertOK
		case !x.breach && status == lodestone.AlertFiring:
			t.From, t.To = []string{lodestone.AlertFiring}, lodestone.AlertResolved
			if notify {
				t.Deliveries = s.deliveries(r, key, lodestone.AlertResolved, resolved(x.msg), now)
			}
		case !x.breach || status == lodestone.AlertFiring:
			continue
		case r.For > 0 && status != lodestone.AlertPending:
			t.From, t.To = []string{lodestone.AlertNone, lodestone.AlertOK, lodestone.AlertResolved}, lodestone.AlertPending
			t.ResolvedBefore = now.Add(-r.Quiet)
		case r.For > 0 && now.Sub(a.Since) < r.For:
			continue // pending, not for long enough yet
		default:
			t.From, t.To = []string{lodestone.AlertNone, lodestone.AlertOK, lodestone.AlertResolved,
				lodestone.AlertPending}, lodestone.AlertFiring
			t.ResolvedBefore = now.Add(-r.Quiet)
			t.Deliveries = s.deliveries(r, key, lodestone.AlertFiring, x.msg, now)
		}
		if _, err := s.store.TransitionAlert(ctx, t); err != nil {
			return err
		}
	}
	// Keys with no reading at all any more (an issue with no fault left in the window, a version no longer
	// observed) have cleared.
	for key, a := range cur {
		if _, ok := rd[key]; ok || (a.Status != lodestone.AlertFiring && a.Status != lodestone.AlertPending) {
			continue
		}
		if r.Condition == lodestone.CondMetric {
			continue // no samples is not a recovery: the alert waits for data
		}
		t := lodestone.AlertTransition{RuleID: r.ID, Key: key, At: now, From: []string{a.Status},
			To: lodestone.AlertOK, Value: a.Value, Summary: a.Summary}
		if a.Status == lodestone.AlertFiring {
			t.To = lodestone.AlertResolved
			m := message{kind: r.Condition, icon: ":white_check_mark:",
				summary: "Resolved: " + strings.TrimSuffix(a.Summary, ".") + " (no longer observed)"}
			if notify {
				t.Deliveries = s.deliveries(r, key, lodestone.AlertResolved, m, now)
			}
		}
		if _, err := s.store.TransitionAlert(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// resolved is a reading's message as a resolution.
func resolved(m message) message {
	m.icon, m.summary = ":white_check_mark:", "Resolved: "+m.summary
	return m
}

func scopeText(sc lodestone.AlertScope) string {
	if sc.Type == lodestone.ScopeFleet {
		return ""
	}
	return " [" + sc.Type + " " + sc.Value + "]"
}
