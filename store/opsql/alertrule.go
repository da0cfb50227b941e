package opsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.AlertRuleStore = (*Ops)(nil)

const ruleCols = `id, name, condition, scope_type, scope_value, threshold, window_ms, for_ms, quiet_ms, webhooks,
	enabled, origin, created_at, updated_at`

func scanRule(sc interface{ Scan(...any) error }) (*lodestone.AlertRule, error) {
	var r lodestone.AlertRule
	var threshold, hooks string
	var window, forMS, quiet, created, updated, enabled int64
	if err := sc.Scan(&r.ID, &r.Name, &r.Condition, &r.Scope.Type, &r.Scope.Value, &threshold, &window, &forMS,
		&quiet, &hooks, &enabled, &r.Origin, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(threshold), &r.Threshold); err != nil {
		return nil, fmt.Errorf("rule %d threshold: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(hooks), &r.Webhooks); err != nil {
		return nil, fmt.Errorf("rule %d webhooks: %w", r.ID, err)
	}
	r.Window, r.For, r.Quiet = time.Duration(window)*time.Millisecond, time.Duration(forMS)*time.Millisecond,
		time.Duration(quiet)*time.Millisecond
	r.Enabled, r.CreatedAt, r.UpdatedAt = enabled != 0, fromMS(created), fromMS(updated)
	return &r, nil
}

// ruleArgs are the values of every column but id, origin and created_at, in ruleCols order.
func ruleArgs(r *lodestone.AlertRule) []any {
	threshold, _ := json.Marshal(r.Threshold)
	hooks, _ := json.Marshal(r.Webhooks)
	if r.Webhooks == nil {
		hooks = []byte("[]")
	}
	enabled := 0
	if r.Enabled {
		enabled = 1
	}
	return []any{r.Name, r.Condition, r.Scope.Type, r.Scope.Value, string(threshold), r.Window.Milliseconds(),
		r.For.Milliseconds(), r.Quiet.Milliseconds(), string(hooks), enabled}
}

// insertRule adds r unless its name is taken (then it returns false).
func (s *Ops) insertRule(ctx context.Context, tx *sql.Tx, r *lodestone.AlertRule, now time.Time) (bool, error) {
	args := append(ruleArgs(r), r.Origin, ms(now), ms(now))
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO alert_rules (name, condition, scope_type, scope_value,
		threshold, window_ms, for_ms, quiet_ms, webhooks, enabled, origin, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id`), args...).Scan(&r.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.CreatedAt, r.UpdatedAt = fromMS(ms(now)), fromMS(ms(now))
	return true, nil
}

// CreateAlertRule implements lodestone.AlertRuleStore.
func (s *Ops) CreateAlertRule(ctx context.Context, r *lodestone.AlertRule) error {
	if r.Origin == "" {
		r.Origin = lodestone.RuleFromAPI
	}
	return s.tx(ctx, "create alert rule", func(tx *sql.Tx) error {
		ok, err := s.insertRule(ctx, tx, r, time.Now())
		if err == nil && !ok {
			return lodestone.Errorf(lodestone.ECONFLICT, "an alert rule named %q exists", r.Name)
		}
		return err
	})
}

// UpdateAlertRule implements lodestone.AlertRuleStore.
func (s *Ops) UpdateAlertRule(ctx context.Context, r *lodestone.AlertRule) error {
	return s.tx(ctx, "update alert rule", func(tx *sql.Tx) error {
		var other int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM alert_rules WHERE name = ? AND id <> ?`), r.Name, r.ID).
			Scan(&other)
		if err == nil {
			return lodestone.Errorf(lodestone.ECONFLICT, "an alert rule named %q exists", r.Name)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := time.Now()
		args := append(ruleArgs(r), ms(now), r.ID)
		got, err := scanRule(tx.QueryRowContext(ctx, s.q(`UPDATE alert_rules SET name = ?, condition = ?,
			scope_type = ?, scope_value = ?, threshold = ?, window_ms = ?, for_ms = ?, quiet_ms = ?, webhooks = ?,
			enabled = ?, updated_at = ? WHERE id = ? RETURNING `+ruleCols), args...))
		if errors.Is(err, sql.ErrNoRows) {
			return lodestone.Errorf(lodestone.ENOTFOUND, "alert rule %d not found", r.ID)
		}
		if err != nil {
			return err
		}
		*r = *got
		return nil
	})
}

// DeleteAlertRule implements lodestone.AlertRuleStore. The rule's states go with it (ON DELETE CASCADE); its
// deliveries stay in the log.
func (s *Ops) DeleteAlertRule(ctx context.Context, id int64) error {
	return s.tx(ctx, "delete alert rule", func(tx *sql.Tx) error {
		// Deleted explicitly too: the cascade needs foreign keys, which a SQLite connection may have off.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM alert_states WHERE rule_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM alert_rules WHERE id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return lodestone.Errorf(lodestone.ENOTFOUND, "alert rule %d not found", id)
		}
		return nil
	})
}

// FindAlertRule implements lodestone.AlertRuleStore.
func (s *Ops) FindAlertRule(ctx context.Context, id int64) (*lodestone.AlertRule, error) {
	r, err := scanRule(s.r.QueryRowContext(ctx, s.q(`SELECT `+ruleCols+` FROM alert_rules WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "alert rule %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: find alert rule: %w", s.name, err)
	}
	return r, nil
}

func (s *Ops) findRules(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) ([]*lodestone.AlertRule, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT `+ruleCols+` FROM alert_rules`+where+` ORDER BY id`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*lodestone.AlertRule{}
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// FindAlertRules implements lodestone.AlertRuleStore.
func (s *Ops) FindAlertRules(ctx context.Context) ([]*lodestone.AlertRule, error) {
	out, err := s.findRules(ctx, s.r, "")
	if err != nil {
		return nil, fmt.Errorf("%s: list alert rules: %w", s.name, err)
	}
	return out, nil
}

// SyncAlertRules implements lodestone.AlertRuleStore.
func (s *Ops) SyncAlertRules(ctx context.Context, origin string, rules []*lodestone.AlertRule) error {
	return s.tx(ctx, "sync alert rules", func(tx *sql.Tx) error {
		have, err := s.findRules(ctx, tx, ` WHERE origin = ?`, origin)
		if err != nil {
			return err
		}
		byName := map[string]*lodestone.AlertRule{}
		for _, r := range have {
			byName[r.Name] = r
		}
		now := time.Now()
		for _, r := range rules {
			r.Origin = origin
			old, ok := byName[r.Name]
			if !ok {
				// A rule of another origin holding the name wins; the default is skipped.
				if _, err := s.insertRule(ctx, tx, r, now); err != nil {
					return err
				}
				continue
			}
			delete(byName, r.Name)
			r.ID, r.CreatedAt = old.ID, old.CreatedAt
			a, b := ruleArgs(r), ruleArgs(old)
			if fmt.Sprint(a) == fmt.Sprint(b) {
				r.UpdatedAt = old.UpdatedAt
				continue
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE alert_rules SET name = ?, condition = ?, scope_type = ?,
				scope_value = ?, threshold = ?, window_ms = ?, for_ms = ?, quiet_ms = ?, webhooks = ?, enabled = ?,
				updated_at = ? WHERE id = ?`), append(a, ms(now), r.ID)...); err != nil {
				return err
			}
		}
		for _, r := range byName {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM alert_states WHERE rule_id = ?`), r.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM alert_rules WHERE id = ?`), r.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

const stateCols = `rule_id, key, status, since, last_event, events, fired_at, resolved_at, value, summary`

func scanState(sc interface{ Scan(...any) error }) (*lodestone.Alert, error) {
	var a lodestone.Alert
	var since, last, fired, resolved int64
	if err := sc.Scan(&a.RuleID, &a.Key, &a.Status, &since, &last, &a.Events, &fired, &resolved, &a.Value,
		&a.Summary); err != nil {
		return nil, err
	}
	a.Since, a.LastEvent, a.FiredAt, a.ResolvedAt = fromMS(since), orZero(last), orZero(fired), orZero(resolved)
	return &a, nil
}

func orZero(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromMS(v)
}

// FindAlerts implements lodestone.AlertRuleStore.
func (s *Ops) FindAlerts(ctx context.Context, f lodestone.AlertStateFilter) ([]*lodestone.Alert, error) {
	var conds []string
	var args []any
	if f.RuleID != 0 {
		conds, args = append(conds, "rule_id = ?"), append(args, f.RuleID)
	}
	if f.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, f.Status)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 10000 // the evaluator reads every state of a rule
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+stateCols+` FROM alert_states`+where+
		` ORDER BY since DESC, id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("%s: list alerts: %w", s.name, err)
	}
	defer rows.Close()
	out := []*lodestone.Alert{}
	for rows.Next() {
		a, err := scanState(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: list alerts: %w", s.name, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// TransitionAlert implements lodestone.AlertRuleStore. The change is one conditional statement on the state row
// (an upsert whose update has the condition when the alert may be new): on PostgreSQL a second replica making
// the same change waits for the first one's row lock, then finds the condition false and changes nothing.
func (s *Ops) TransitionAlert(ctx context.Context, t lodestone.AlertTransition) (bool, error) {
	at := ms(t.At)
	// Columns the new state sets, beside status and since.
	set := map[string]any{"value": t.Value, "summary": t.Summary}
	switch t.To {
	case lodestone.AlertFiring:
		set["fired_at"], set["last_event"], set["events"] = at, at, 1
	case lodestone.AlertResolved:
		set["resolved_at"] = at
	case lodestone.AlertPending, lodestone.AlertOK:
	default:
		return false, fmt.Errorf("%s: alert transition to %q", s.name, t.To)
	}
	cols := []string{"status", "since"}
	vals := []any{t.To, at}
	for _, c := range []string{"value", "summary", "fired_at", "last_event", "events", "resolved_at"} {
		if v, ok := set[c]; ok {
			cols, vals = append(cols, c), append(vals, v)
		}
	}
	var guard []string
	var gargs []any
	var states []string
	maybeNew := false
	for _, st := range t.From {
		if st == lodestone.AlertNone {
			maybeNew = true
			continue
		}
		states, gargs = append(states, "?"), append(gargs, st)
	}
	if len(states) == 0 {
		states = append(states, "NULL")
	}
	guard = append(guard, "alert_states.status IN ("+strings.Join(states, ", ")+")")
	if !t.ResolvedBefore.IsZero() {
		guard, gargs = append(guard, "NOT (alert_states.status = 'resolved' AND alert_states.resolved_at > ?)"),
			append(gargs, ms(t.ResolvedBefore))
	}
	if !t.IdleBefore.IsZero() {
		guard, gargs = append(guard, "alert_states.last_event <= ?"), append(gargs, ms(t.IdleBefore))
	}
	var query string
	var args []any
	if maybeNew {
		assign := make([]string, len(cols))
		for i, c := range cols {
			assign[i] = c + " = excluded." + c
		}
		query = `INSERT INTO alert_states (rule_id, key, ` + strings.Join(cols, ", ") + `) VALUES (?, ?` +
			strings.Repeat(", ?", len(cols)) + `) ON CONFLICT (rule_id, key) DO UPDATE SET ` +
			strings.Join(assign, ", ") + ` WHERE ` + strings.Join(guard, " AND ") + ` RETURNING rule_id`
		args = append(append([]any{t.RuleID, t.Key}, vals...), gargs...)
	} else {
		assign := make([]string, len(cols))
		for i, c := range cols {
			assign[i] = c + " = ?"
		}
		query = `UPDATE alert_states SET ` + strings.Join(assign, ", ") + ` WHERE rule_id = ? AND key = ? AND ` +
			strings.Join(guard, " AND ") + ` RETURNING rule_id`
		args = append(append(vals, t.RuleID, t.Key), gargs...)
	}
	done := false
	err := s.tx(ctx, "change alert state", func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, s.q(query), args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			done = false
			return nil
		}
		if err != nil {
			return err
		}
		done = true
		ins := s.q(`INSERT INTO alert_deliveries (kind, device_id, url, body, dedup_key, status, created_at,
			next_attempt) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (dedup_key, url) DO NOTHING`)
		for _, d := range t.Deliveries {
			created := d.CreatedAt
			if created.IsZero() {
				created = t.At
			}
			if _, err := tx.ExecContext(ctx, ins, d.Kind, d.DeviceID, d.URL, d.Body, d.DedupKey, ms(created),
				ms(created)); err != nil {
				return err
			}
		}
		return nil
	})
	return done, err
}

// TouchAlert implements lodestone.AlertRuleStore.
func (s *Ops) TouchAlert(ctx context.Context, ruleID int64, key string, at time.Time) (bool, error) {
	var n int64
	err := s.tx(ctx, "touch alert", func(tx *sql.Tx) error {
		// An event counts when it is newer than the last one: every replica touches the alert for the same
		// event, and only the first of them moves last_event.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE alert_states
			SET events = events + CASE WHEN last_event < ? THEN 1 ELSE 0 END,
				last_event = CASE WHEN last_event < ? THEN ? ELSE last_event END
			WHERE rule_id = ? AND key = ? AND status = 'firing'`), ms(at), ms(at), ms(at), ruleID, key)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// scopeSQL is the condition that puts a device (the devices row aliased d) in scope; fw is the expression of
// the firmware version to match.
func scopeSQL(sc lodestone.AlertScope, fw string) (string, []any) {
	switch sc.Type {
	case lodestone.ScopeDevice:
		return "d.device_id = ?", []any{sc.Value}
	case lodestone.ScopeFirmware:
		return fw + " = ?", []any{sc.Value}
	case lodestone.ScopeGroup:
		return `d.id IN (SELECT m.device_id FROM device_group_members m JOIN device_groups g ON g.id = m.group_id
			WHERE g.name = ?)`, []any{sc.Value}
	case lodestone.ScopeTag:
		return "d.id IN (SELECT t.device_id FROM device_tags t WHERE t.tag = ?)", []any{sc.Value}
	}
	return "1 = 1", nil
}

// AlertDeviceInScope implements lodestone.AlertRuleStore.
func (s *Ops) AlertDeviceInScope(ctx context.Context, deviceID string, sc lodestone.AlertScope) (bool, error) {
	cond, args := scopeSQL(sc, "d.firmware_version")
	var n int
	err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*) FROM devices d WHERE d.device_id = ? AND `+cond),
		append([]any{deviceID}, args...)...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("%s: alert scope of %s: %w", s.name, deviceID, err)
	}
	return n > 0, nil
}

// AlertScopeDevices implements lodestone.AlertRuleStore.
func (s *Ops) AlertScopeDevices(ctx context.Context, sc lodestone.AlertScope) (int64, int64, error) {
	cond, args := scopeSQL(sc, "d.firmware_version")
	var total, offline int64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*), COALESCE(sum(CASE WHEN d.status = 'offline' THEN 1 ELSE 0
		END), 0) FROM devices d WHERE `+cond), args...).Scan(&total, &offline)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: count devices in alert scope: %w", s.name, err)
	}
	return total, offline, nil
}

// AlertCrashActivity implements lodestone.AlertRuleStore. It reads the faults of the window through the
// received_at index; symbolicated faults only, since a fault joins an issue when the workers resolve it.
func (s *Ops) AlertCrashActivity(ctx context.Context, sc lodestone.AlertScope, from, to time.Time) (
	[]lodestone.CrashActivity, error) {
	cond, args := scopeSQL(sc, "COALESCE(f.firmware_version, d.firmware_version)")
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT g.id, COALESCE(g.title, ''), g.state, g.first_seen, count(*),
		count(DISTINCT f.device_id)
		FROM faults f JOIN devices d ON d.id = f.device_id JOIN crash_groups g ON g.id = f.crash_group_id
		WHERE f.received_at >= ? AND f.received_at < ? AND `+cond+`
		GROUP BY g.id, g.title, g.state, g.first_seen ORDER BY g.id`), append([]any{ms(from), ms(to)}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: crash activity: %w", s.name, err)
	}
	defer rows.Close()
	var out []lodestone.CrashActivity
	for rows.Next() {
		var a lodestone.CrashActivity
		var first int64
		if err := rows.Scan(&a.IssueID, &a.Title, &a.State, &first, &a.Occurrences, &a.Devices); err != nil {
			return nil, fmt.Errorf("%s: crash activity: %w", s.name, err)
		}
		a.FirstSeen = fromMS(first)
		out = append(out, a)
	}
	return out, rows.Err()
}
