package otasql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

var _ lodestone.TimelineReader = (*Store)(nil)

// Timeline sources, in the order entries of the same millisecond sort (newest first: faults, then events, then
// reboots), so pages break between entries of one millisecond deterministically.
const (
	rankReboot = 1
	rankEvent  = 2
	rankFault  = 3
)

// timelineCursor is where a page ended: the last entry's time, source and id. Entries strictly older come next.
type timelineCursor struct {
	at      int64
	rank    int
	id      int64
	present bool
}

func (c timelineCursor) String() string { return fmt.Sprintf("%d_%d_%d", c.at, c.rank, c.id) }

func parseTimelineCursor(s string) (timelineCursor, error) {
	if s == "" {
		return timelineCursor{}, nil
	}
	parts := strings.Split(s, "_")
	if len(parts) == 3 {
		at, e1 := strconv.ParseInt(parts[0], 10, 64)
		rank, e2 := strconv.Atoi(parts[1])
		id, e3 := strconv.ParseInt(parts[2], 10, 64)
		if e1 == nil && e2 == nil && e3 == nil && rank >= rankReboot && rank <= rankFault {
			return timelineCursor{at: at, rank: rank, id: id, present: true}, nil
		}
	}
	return timelineCursor{}, lodestone.Errorf(lodestone.EINVALID, "timeline cursor %q is not one a page returned", s)
}

// DeviceTimeline implements lodestone.TimelineReader. Each source is read newest first through its
// (device, time) index, at most a page of it, and the pages are merged in SQL.
func (s *Store) DeviceTimeline(ctx context.Context, q lodestone.TimelineQuery) (lodestone.TimelinePage, error) {
	page := lodestone.TimelinePage{Entries: []lodestone.TimelineEntry{}}
	cur, err := parseTimelineCursor(q.Cursor)
	if err != nil {
		return page, err
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = lodestone.DefaultTimelineLimit
	case limit > lodestone.MaxTimelineLimit:
		limit = lodestone.MaxTimelineLimit
	}
	var dev int64
	err = s.r.QueryRowContext(ctx, s.q(`SELECT id FROM devices WHERE device_id = ?`), q.DeviceID).Scan(&dev)
	if errors.Is(err, sql.ErrNoRows) {
		return page, lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
	} else if err != nil {
		return page, s.wrap(err, "device timeline")
	}
	from, to := int64(-1<<62), int64(1<<62)
	if !q.From.IsZero() {
		from = ms(q.From)
	}
	if !q.To.IsZero() {
		to = ms(q.To)
	}
	if cur.present {
		to = min(to, cur.at+1)
	} else {
		cur = timelineCursor{at: 1 << 62, rank: rankFault + 1}
	}
	// before is the cursor condition for a source of rank rk whose time and id columns are t and id.
	before := func(t, id string, rk int) string {
		return fmt.Sprintf(`(%[1]s < ? OR (%[1]s = ? AND (%[3]d < ? OR (%[3]d = ? AND %[2]s < ?))))`, t, id, rk)
	}
	cargs := []any{cur.at, cur.at, cur.rank, cur.rank, cur.id}
	var args []any
	add := func(a ...any) { args = append(args, a...) }
	query := `SELECT at, rk, id, kind, a, b, c, n FROM (
		SELECT * FROM (SELECT received_at AS at, ` + strconv.Itoa(rankReboot) + ` AS rk, id, 'reboot' AS kind,
			'' AS a, '' AS b, '' AS c, CAST(reason AS BIGINT) AS n
			FROM reboots WHERE device_id = ? AND received_at >= ? AND received_at < ? AND ` +
		before("received_at", "id", rankReboot) + ` ORDER BY received_at DESC, id DESC LIMIT ?) r
		UNION ALL
		SELECT * FROM (SELECT f.received_at AS at, ` + strconv.Itoa(rankFault) + ` AS rk, f.id, 'fault' AS kind,
			coalesce(f.firmware_version, '') AS a, coalesce(g.title, '') AS b, coalesce(f.symbol, '') AS c,
			CAST(f.crash_group_id AS BIGINT) AS n
			FROM faults f LEFT JOIN crash_groups g ON g.id = f.crash_group_id
			WHERE f.device_id = ? AND f.received_at >= ? AND f.received_at < ? AND ` +
		before("f.received_at", "f.id", rankFault) + ` ORDER BY f.received_at DESC, f.id DESC LIMIT ?) f
		UNION ALL
		SELECT * FROM (SELECT at, ` + strconv.Itoa(rankEvent) + ` AS rk, id, kind, from_value AS a, to_value AS b,
			detail AS c, CAST(NULL AS BIGINT) AS n
			FROM device_events WHERE device_id = ? AND at >= ? AND at < ? AND ` +
		before("at", "id", rankEvent) + ` ORDER BY at DESC, id DESC LIMIT ?) e
	) x ORDER BY at DESC, rk DESC, id DESC LIMIT ?`
	add(dev, from, to)
	add(cargs...)
	add(limit + 1)
	add(dev, from, to)
	add(cargs...)
	add(limit + 1)
	add(q.DeviceID, from, to)
	add(cargs...)
	add(limit+1, limit+1)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return page, s.wrap(err, "device timeline")
	}
	defer rows.Close()
	var last timelineCursor
	for rows.Next() {
		var e lodestone.TimelineEntry
		var atMS int64
		var rk int
		var a, b, c string
		var n sql.NullInt64
		if err := rows.Scan(&atMS, &rk, &e.ID, &e.Kind, &a, &b, &c, &n); err != nil {
			return page, s.wrap(err, "device timeline")
		}
		if len(page.Entries) == limit {
			page.Next = last.String()
			break
		}
		e.At = fromMS(atMS)
		last = timelineCursor{at: atMS, rank: rk, id: e.ID}
		describe(&e, a, b, c, n)
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return page, s.wrap(err, "device timeline")
	}
	rows.Close()
	return page, s.wrap(s.faultLogs(ctx, q, page.Entries), "device timeline: logs around faults")
}

func describe(e *lodestone.TimelineEntry, a, b, c string, n sql.NullInt64) {
	switch e.Kind {
	case lodestone.TimelineReboot:
		e.ReasonCode = int(n.Int64)
		e.Reason = chunk.RebootReasonName(uint8(n.Int64))
		e.Unexpected = slices.Contains(lodestone.UnexpectedRebootReasons, uint8(n.Int64))
		e.Summary = "reboot: " + e.Reason
		if e.Unexpected {
			e.Summary += " (unexpected)"
		}
	case lodestone.TimelineFault:
		e.Version = a
		if n.Valid {
			id := n.Int64
			e.IssueID = &id
		}
		e.Summary = "fault on " + cmpOr(a, "unknown firmware")
		if b != "" {
			e.Summary += ": " + b
		} else if c != "" {
			e.Summary += " in " + c
		}
	case lodestone.TimelineFirmware:
		e.From, e.To = a, b
		if a == "" {
			e.Summary = "first reported firmware " + b
		} else {
			e.Summary = "firmware " + a + " → " + b
		}
	case lodestone.TimelineOTA:
		e.From, e.To, e.Detail = a, b, c
		e.Summary = a + ": " + b
		if c != "" {
			e.Summary += " (" + c + ")"
		}
	case lodestone.TimelineOnline:
		e.Summary = "online"
	case lodestone.TimelineOffline:
		e.Summary = "offline (last contact)"
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// faultLogs attaches to each fault the device's log records within the window around it (one indexed range read
// per fault and log source, at most a page of faults).
func (s *Store) faultLogs(ctx context.Context, q lodestone.TimelineQuery, entries []lodestone.TimelineEntry) error {
	window := q.LogWindow
	switch {
	case window < 0:
		return nil
	case window == 0:
		window = lodestone.DefaultLogWindow
	case window > lodestone.MaxLogWindow:
		window = lodestone.MaxLogWindow
	}
	per := q.LogsPerFault
	switch {
	case per <= 0:
		per = lodestone.DefaultLogsPerFault
	case per > lodestone.MaxLogsPerFault:
		per = lodestone.MaxLogsPerFault
	}
	stmt := s.q(`SELECT l.time_ns, l.severity_text, l.body FROM logs l JOIN log_sources src ON src.id = l.source_id
		WHERE src.device_id = ? AND l.time_ns >= ? AND l.time_ns <= ? ORDER BY l.time_ns, l.id LIMIT ?`)
	for i := range entries {
		e := &entries[i]
		if e.Kind != lodestone.TimelineFault {
			continue
		}
		e.Logs = []lodestone.TimelineLog{}
		rows, err := s.r.QueryContext(ctx, stmt, q.DeviceID, e.At.Add(-window).UnixNano(), e.At.Add(window).UnixNano(), per)
		if err != nil {
			return err
		}
		for rows.Next() {
			var ns int64
			var l lodestone.TimelineLog
			if err := rows.Scan(&ns, &l.Severity, &l.Body); err != nil {
				rows.Close()
				return err
			}
			l.Time = time.Unix(0, ns).UTC()
			e.Logs = append(e.Logs, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}
