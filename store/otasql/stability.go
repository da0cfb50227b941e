package otasql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

var _ lodestone.StabilityReader = (*Store)(nil)

// topIssues is how many crash issues a version's report lists.
const topIssues = 5

// stabilityScope narrows the stability tables to some devices: cond is a condition on a devices.id column,
// written with %s for the column's name.
type stabilityScope struct {
	cond string
	args []any
}

func (sc stabilityScope) on(col string) string {
	if sc.cond == "" {
		return ""
	}
	return " AND " + strings.ReplaceAll(sc.cond, "%s", col)
}

// groupScope takes the group's id: a literal, like the time range, so that PostgreSQL plans each report for its
// own group and range instead of reusing a generic plan of a cached statement (measured: 5 s instead of 20 ms
// for a group of 5,000 once the generic plan set in).
func groupScope(id int64) stabilityScope {
	return stabilityScope{cond: `%s IN (SELECT device_id FROM device_group_members WHERE group_id = ` +
		strconv.FormatInt(id, 10) + `)`}
}

func tagScope(tag string) stabilityScope {
	return stabilityScope{cond: `%s IN (SELECT device_id FROM device_tags WHERE tag = ?)`, args: []any{tag}}
}

// campaignScope is the campaign's devices but the failed ones, whose firmware is uncertain.
func campaignScope(id int64) stabilityScope {
	return stabilityScope{cond: `%s IN (SELECT d.id FROM ota_campaign_devices cd JOIN devices d
		ON d.device_id = cd.device_id WHERE cd.campaign_id = ` + strconv.FormatInt(id, 10) + ` AND cd.status <> 'failed')`}
}

func versionsIn(col string, versions []string) (string, []any) {
	if len(versions) == 0 {
		return "", nil
	}
	args := make([]any, len(versions))
	for i, v := range versions {
		args[i] = v
	}
	return " AND " + col + " IN (?" + strings.Repeat(", ?", len(versions)-1) + ")", args
}

// hourRange is col in [from, to), written as literals (integers, never user text) so that each report is planned
// for its range.
func hourRange(col string, from, to int64) string {
	return col + " >= " + strconv.FormatInt(from, 10) + " AND " + col + " < " + strconv.FormatInt(to, 10)
}

func totalsQuery(from, to int64, sc stabilityScope, versions []string) (string, []any) {
	vcond, vargs := versionsIn("version", versions)
	return `SELECT version, count(DISTINCT device_id),
		CAST(sum(observed_ms) AS BIGINT), CAST(sum(CASE WHEN faults > 0 THEN observed_ms ELSE 0 END) AS BIGINT),
		CAST(sum(faults) AS BIGINT), CAST(sum(reboots) AS BIGINT)
		FROM stability_hours WHERE ` + hourRange("hour", from, to) + sc.on("device_id") + vcond + ` GROUP BY version`,
		append(slices.Clone(sc.args), vargs...)
}

func reasonsQuery(from, to int64, sc stabilityScope, versions []string) (string, []any) {
	vcond, vargs := versionsIn("version", versions)
	return `SELECT version, reason, CAST(sum(n) AS BIGINT) FROM stability_reboots
		WHERE ` + hourRange("hour", from, to) + sc.on("device_id") + vcond + ` GROUP BY version, reason`,
		append(slices.Clone(sc.args), vargs...)
}

func issuesQuery(from, to int64, sc stabilityScope, versions []string) (string, []any) {
	vcond, vargs := versionsIn("coalesce(f.firmware_version, '')", versions)
	return `SELECT coalesce(f.firmware_version, ''), f.crash_group_id,
		coalesce(g.title, ''), count(DISTINCT f.device_id), count(*)
		FROM faults f JOIN crash_groups g ON g.id = f.crash_group_id
		WHERE ` + hourRange("f.received_at", from, to) + sc.on("f.device_id") + vcond + `
		GROUP BY coalesce(f.firmware_version, ''), f.crash_group_id, coalesce(g.title, '')`,
		append(slices.Clone(sc.args), vargs...)
}

// Statement is one SQL statement with its arguments, written for the store's backend.
type Statement struct {
	Name, SQL string
	Args      []any
}

// StabilityStatements are the statements Stability runs for q (a group or tag given by name), so the backends'
// tests can show their query plans.
func (s *Store) StabilityStatements(q lodestone.StabilityQuery) []Statement {
	f, t := lodestone.StabilityRange(q.From, q.To)
	var sc stabilityScope
	switch {
	case q.Group != "":
		var id int64
		s.r.QueryRow(s.q(`SELECT id FROM device_groups WHERE name = ?`), q.Group).Scan(&id)
		sc = groupScope(id)
	case q.Tag != "":
		sc = tagScope(q.Tag)
	}
	var out []Statement
	for _, st := range []struct {
		name string
		fn   func(int64, int64, stabilityScope, []string) (string, []any)
	}{{"totals", totalsQuery}, {"reboot reasons", reasonsQuery}, {"crash issues", issuesQuery}} {
		query, args := st.fn(ms(f), ms(t), sc, q.Versions)
		out = append(out, Statement{Name: st.name, SQL: s.q(query), Args: args})
	}
	return out
}

// stabilityTotals reads the totals of each version over [from, to) (whole hours, Unix ms) from the rollups. It is
// the one computation behind the stability report and the campaign health gate.
func (s *Store) stabilityTotals(ctx context.Context, from, to int64, sc stabilityScope,
	versions []string) (map[string]*lodestone.VersionStability, error) {
	query, args := totalsQuery(from, to, sc, versions)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*lodestone.VersionStability{}
	for rows.Next() {
		v := &lodestone.VersionStability{RebootsByReason: map[string]int{}, TopIssues: []lodestone.StabilityIssue{}}
		var observed, crashed int64
		if err := rows.Scan(&v.Version, &v.Devices, &observed, &crashed, &v.Faults, &v.UnexpectedReboots); err != nil {
			return nil, err
		}
		v.DeviceHours, v.CrashHours = float64(observed)/3.6e6, float64(crashed)/3.6e6
		v.Derive()
		out[v.Version] = v
	}
	return out, rows.Err()
}

// Stability implements lodestone.StabilityReader.
func (s *Store) Stability(ctx context.Context, q lodestone.StabilityQuery) (lodestone.StabilityReport, error) {
	if err := lodestone.ValidateStabilityQuery(q); err != nil {
		return lodestone.StabilityReport{}, err
	}
	fromT, toT := lodestone.StabilityRange(q.From, q.To)
	rep := lodestone.StabilityReport{From: fromT, To: toT, Versions: []lodestone.VersionStability{}}
	var sc stabilityScope
	switch {
	case q.Group != "":
		var id int64
		err := s.r.QueryRowContext(ctx, s.q(`SELECT id FROM device_groups WHERE name = ?`), q.Group).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return rep, lodestone.Errorf(lodestone.ENOTFOUND, "group %q not found", q.Group)
		} else if err != nil {
			return rep, s.wrap(err, "stability")
		}
		sc = groupScope(id)
	case q.Tag != "":
		sc = tagScope(q.Tag)
	}
	from, to := ms(fromT), ms(toT)
	totals, err := s.stabilityTotals(ctx, from, to, sc, q.Versions)
	if err != nil {
		return rep, s.wrap(err, "stability")
	}
	if err := s.rebootReasons(ctx, from, to, sc, q.Versions, totals); err != nil {
		return rep, s.wrap(err, "stability: reboot reasons")
	}
	if err := s.topIssues(ctx, from, to, sc, q.Versions, totals); err != nil {
		return rep, s.wrap(err, "stability: crash issues")
	}
	if err := s.previousVersions(ctx, totals); err != nil {
		return rep, s.wrap(err, "stability: previous versions")
	}
	for _, v := range totals {
		rep.Versions = append(rep.Versions, *v)
	}
	slices.SortFunc(rep.Versions, func(a, b lodestone.VersionStability) int {
		return cmp.Or(cmp.Compare(b.DeviceHours, a.DeviceHours), cmp.Compare(a.Version, b.Version))
	})
	rep.Compare()
	return rep, nil
}

func (s *Store) rebootReasons(ctx context.Context, from, to int64, sc stabilityScope, versions []string,
	totals map[string]*lodestone.VersionStability) error {
	query, args := reasonsQuery(from, to, sc, versions)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var reason, n int
		if err := rows.Scan(&v, &reason, &n); err != nil {
			return err
		}
		if t := totals[v]; t != nil {
			t.RebootsByReason[chunk.RebootReasonName(uint8(reason))] += n
		}
	}
	return rows.Err()
}

// topIssues reads the faults in range (they carry the version they ran) by crash issue. Faults not yet grouped
// into an issue (symbolication is asynchronous) count in Faults but not here.
func (s *Store) topIssues(ctx context.Context, from, to int64, sc stabilityScope, versions []string,
	totals map[string]*lodestone.VersionStability) error {
	query, args := issuesQuery(from, to, sc, versions)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var is lodestone.StabilityIssue
		if err := rows.Scan(&v, &is.IssueID, &is.Title, &is.Devices, &is.Occurrences); err != nil {
			return err
		}
		if t := totals[v]; t != nil {
			t.TopIssues = append(t.TopIssues, is)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range totals {
		slices.SortFunc(t.TopIssues, func(a, b lodestone.StabilityIssue) int {
			return cmp.Or(cmp.Compare(b.Devices, a.Devices), cmp.Compare(b.Occurrences, a.Occurrences),
				cmp.Compare(a.IssueID, b.IssueID))
		})
		if len(t.TopIssues) > topIssues {
			t.TopIssues = t.TopIssues[:topIssues]
		}
	}
	return nil
}

// previousVersions names, for each version, the version its devices most often updated from.
func (s *Store) previousVersions(ctx context.Context, totals map[string]*lodestone.VersionStability) error {
	if len(totals) == 0 {
		return nil
	}
	names := make([]string, 0, len(totals))
	for v := range totals {
		names = append(names, v)
	}
	slices.Sort(names)
	vcond, vargs := versionsIn("to_value", names)
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT to_value, from_value, count(*) FROM device_events
		WHERE kind = 'firmware' AND from_value <> ''`+vcond+` GROUP BY to_value, from_value`), vargs...)
	if err != nil {
		return err
	}
	defer rows.Close()
	best := map[string]int{}
	for rows.Next() {
		var to, from string
		var n int
		if err := rows.Scan(&to, &from, &n); err != nil {
			return err
		}
		t := totals[to]
		if t == nil || from == to {
			continue
		}
		if n > best[to] || (n == best[to] && from > t.Previous) {
			best[to], t.Previous = n, from
		}
	}
	return rows.Err()
}

func (s *Store) campaignTarget(ctx context.Context, id int64) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT target_version FROM ota_campaigns WHERE id = ?`), id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", lodestone.Errorf(lodestone.ENOTFOUND, "campaign not found")
	}
	return v, err
}
