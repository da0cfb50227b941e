package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.LogStore = (*DB)(nil)

var logCopyCols = []string{"id", "source_id", "time_ns", "observed_ns", "severity", "severity_text", "body", "attributes",
	"trace_id", "span_id", "event_name", "flags", "received_at"}

// WriteLogs implements lodestone.LogStore: sources are upserted in one statement, then every record goes in by
// COPY, all in one transaction. The records get consecutive ids, reserved before the transaction, and each
// record's ID is set once they are committed, so that a live tail on any replica can read exactly this batch back.
func (db *DB) WriteLogs(ctx context.Context, records []*lodestone.LogRecord) error {
	if len(records) == 0 {
		return nil
	}
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		// A unique violation is a row that took a reserved id without reserving it (a replica running an older
		// version during an upgrade): the next attempt reserves other ids.
		if err = db.writeLogs(ctx, records); err == nil || !retryable(err) && !isUnique(err) {
			return err
		}
	}
	return err
}

func sourceKey(project, device string) string { return project + "\x00" + device }

// reserveLogIDs moves the logs id sequence past $1 ids and returns the last of them. The advisory lock makes the
// nextval and setval pair atomic between reservers; it is held only for this implicit transaction, never over a
// COPY, so concurrent log writers still overlap.
var reserveLogIDs = []string{
	`SELECT pg_advisory_xact_lock(hashtext('lodestone log ids'))`,
	`SELECT setval(s, nextval(s) + $1 - 1) FROM (SELECT pg_get_serial_sequence('logs', 'id')::regclass AS s) q`,
}

// reserveLogIDs returns the first of n consecutive log ids that no other writer will use.
func (db *DB) reserveLogIDs(ctx context.Context, n int) (int64, error) {
	b := &pgx.Batch{}
	b.Queue(reserveLogIDs[0])
	b.Queue(reserveLogIDs[1], int64(n))
	res := db.pool.SendBatch(ctx, b) // one round trip, one implicit transaction
	defer res.Close()
	var last int64
	if _, err := res.Exec(); err != nil {
		return 0, fmt.Errorf("postgres: lock log ids: %w", err)
	}
	if err := res.QueryRow().Scan(&last); err != nil {
		return 0, fmt.Errorf("postgres: reserve log ids: %w", err)
	}
	return last - int64(n) + 1, nil
}

func (db *DB) writeLogs(ctx context.Context, records []*lodestone.LogRecord) error {
	first, err := db.reserveLogIDs(ctx, len(records))
	if err != nil {
		return err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin log write: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	ids := map[string]int64{}
	var projects, devices []string
	db.mu.Lock()
	for _, r := range records {
		k := sourceKey(r.Project, r.DeviceID)
		if _, ok := ids[k]; ok {
			continue
		}
		if id, ok := db.sources.Get(k); ok {
			ids[k] = id
			continue
		}
		ids[k] = 0
		projects, devices = append(projects, r.Project), append(devices, r.DeviceID)
	}
	db.mu.Unlock()
	if len(projects) > 0 {
		// Sorted input keeps concurrent writers from deadlocking on each other's new sources.
		rows, err := tx.Query(ctx, `INSERT INTO log_sources (project, device_id)
			SELECT p, d FROM unnest($1::text[], $2::text[]) AS t(p, d) ORDER BY p, d
			ON CONFLICT (project, device_id) DO UPDATE SET project = excluded.project
			RETURNING id, project, device_id`, projects, devices)
		if err != nil {
			return fmt.Errorf("postgres: upsert log sources: %w", err)
		}
		for rows.Next() {
			var id int64
			var p, d string
			if err := rows.Scan(&id, &p, &d); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: scan log source: %w", err)
			}
			ids[sourceKey(p, d)] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: upsert log sources: %w", err)
		}
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(records) {
			return nil, nil
		}
		r := records[i]
		i++
		return []any{first + int64(i-1), ids[sourceKey(r.Project, r.DeviceID)], r.Time.UnixNano(), r.ObservedTime.UnixNano(),
			r.Severity, r.SeverityText, r.Body, r.Attributes, r.TraceID, r.SpanID, r.EventName, int64(r.Flags),
			ms(r.ReceivedAt)}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"logs"}, logCopyCols, src); err != nil {
		return fmt.Errorf("postgres: copy logs: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit logs: %w", err)
	}
	for i, r := range records {
		r.ID = first + int64(i)
	}
	db.mu.Lock()
	for k, id := range ids {
		db.sources.Add(k, id)
	}
	db.mu.Unlock()
	return nil
}

// FindLogs implements lodestone.LogStore.
func (db *DB) FindLogs(ctx context.Context, f lodestone.LogFilter) ([]*lodestone.LogRecord, error) {
	var a args
	var conds []string
	if f.Project != "" {
		conds = append(conds, "s.project = "+a.add(f.Project))
	}
	if f.DeviceID != "" {
		conds = append(conds, "s.device_id = "+a.add(f.DeviceID))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "x.time_ns >= "+a.add(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "x.time_ns < "+a.add(f.Until.UnixNano()))
	}
	if f.MinSeverity > 0 {
		conds = append(conds, "x.severity >= "+a.add(f.MinSeverity))
		if f.MinSeverity >= 13 {
			conds = append(conds, "x.severity >= 13") // lets the planner use the partial severity index
		}
	}
	if f.Text != "" {
		pat := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Text) + "%"
		conds = append(conds, "x.body ILIKE "+a.add(pat))
	}
	q := `SELECT x.id, s.project, s.device_id, x.time_ns, x.observed_ns, x.severity, x.severity_text, x.body,
		x.attributes, x.trace_id, x.span_id, x.event_name, x.flags, x.received_at
		FROM logs x JOIN log_sources s ON s.id = x.source_id` + where(conds) +
		` ORDER BY x.time_ns DESC, x.id DESC LIMIT ` + a.add(lodestone.ClampLimit(f.Limit)) +
		` OFFSET ` + a.add(max(f.Offset, 0))
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: query logs: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.LogRecord{}
	for rows.Next() {
		var r lodestone.LogRecord
		var t, obs, flags, recv int64
		if err := rows.Scan(&r.ID, &r.Project, &r.DeviceID, &t, &obs, &r.Severity, &r.SeverityText, &r.Body,
			&r.Attributes, &r.TraceID, &r.SpanID, &r.EventName, &flags, &recv); err != nil {
			return nil, fmt.Errorf("postgres: scan log: %w", err)
		}
		r.Time, r.ObservedTime = time.Unix(0, t).UTC(), time.Unix(0, obs).UTC()
		r.Flags, r.ReceivedAt = uint32(flags), fromMS(recv)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read logs: %w", err)
	}
	return out, nil
}

// DeleteLogsBefore implements lodestone.LogStore, in slices so no transaction grows large.
func (db *DB) DeleteLogsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM logs WHERE id IN
			(SELECT id FROM logs WHERE time_ns < $1 LIMIT 10000)`, cutoff.UnixNano())
		if err != nil {
			return total, fmt.Errorf("postgres: delete old logs: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}
