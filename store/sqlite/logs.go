package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/lru"
)

var _ lodestone.LogStore = (*DB)(nil)

const (
	logCols  = "source_id, time_ns, observed_ns, severity, severity_text, body, attributes, trace_id, span_id, event_name, flags, received_at"
	logWidth = 12
)

// logStmts are the log writer's statements and its source id cache; they belong to the writer connection and
// are guarded by DB.wmu.
type logStmts struct {
	one, many, source *sql.Stmt
	sources           *lru.Cache[string, int64] // project + "\x00" + device -> committed log_sources id
}

func (l *logStmts) close() {
	for _, s := range []*sql.Stmt{l.one, l.many, l.source} {
		if s != nil {
			s.Close()
		}
	}
}

func (db *DB) prepareLogStmts(ctx context.Context) error {
	if db.logs != nil {
		return nil
	}
	l := &logStmts{sources: lru.New[string, int64](KeyCacheSize)}
	for _, p := range []struct {
		dst  **sql.Stmt
		text string
	}{
		{&l.one, multiRowInsert("logs", logCols, 1, logWidth)},
		{&l.many, multiRowInsert("logs", logCols, rowsPerInsert, logWidth)},
		{&l.source, `INSERT INTO log_sources (project, device_id) VALUES (?1, ?2)
			ON CONFLICT (project, device_id) DO UPDATE SET project = excluded.project RETURNING id`},
	} {
		st, err := db.w.PrepareContext(ctx, p.text)
		if err != nil {
			l.close()
			return fmt.Errorf("sqlite: prepare log statements: %w", err)
		}
		*p.dst = st
	}
	db.logs = l
	return nil
}

// WriteLogs implements lodestone.LogStore: every record in one transaction on the writer connection; each
// record's ID is set once they are committed.
func (db *DB) WriteLogs(ctx context.Context, records []*lodestone.LogRecord) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.stmts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "store is closed")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	stmtCtx := context.WithoutCancel(ctx) // see WriteTelemetry
	if err := db.prepareLogStmts(stmtCtx); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(stmtCtx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin log write: %w", err)
	}
	defer tx.Rollback()
	w := &writeTx{ctx: stmtCtx, tx: tx, db: db, bound: make(map[*sql.Stmt]*sql.Stmt, 4)}
	rows := batchedInsert{one: db.logs.one, many: db.logs.many, width: logWidth,
		rows: make([]any, 0, rowsPerInsert*logWidth)}
	newSources := map[string]int64{}
	for _, r := range records {
		key := r.Project + "\x00" + r.DeviceID
		src, ok := db.logs.sources.Get(key)
		if !ok {
			if src, ok = newSources[key]; !ok {
				if err := w.stmt(db.logs.source).QueryRowContext(stmtCtx, r.Project, r.DeviceID).Scan(&src); err != nil {
					return fmt.Errorf("sqlite: upsert log source %q: %w", r.DeviceID, err)
				}
				newSources[key] = src
			}
		}
		if err := w.add(&rows, src, r.Time.UnixNano(), r.ObservedTime.UnixNano(), r.Severity, r.SeverityText,
			r.Body, r.Attributes, r.TraceID, r.SpanID, r.EventName, int64(r.Flags), ms(r.ReceivedAt)); err != nil {
			return fmt.Errorf("sqlite: insert logs: %w", err)
		}
	}
	if err := w.flush(&rows, true); err != nil {
		return fmt.Errorf("sqlite: insert logs: %w", err)
	}
	// The only writer appends rows at the largest rowid plus one, so this transaction's rows are consecutive.
	var last int64
	if err := tx.QueryRowContext(stmtCtx, `SELECT last_insert_rowid()`).Scan(&last); err != nil {
		return fmt.Errorf("sqlite: read log ids: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit logs: %w", err)
	}
	for k, id := range newSources {
		db.logs.sources.Add(k, id)
	}
	for i, r := range records {
		r.ID = last - int64(len(records)-1-i)
	}
	return nil
}

// FindLogs implements lodestone.LogStore.
func (db *DB) FindLogs(ctx context.Context, f lodestone.LogFilter) ([]*lodestone.LogRecord, error) {
	var where []string
	var args []any
	if f.Project != "" {
		where = append(where, "s.project = ?")
		args = append(args, f.Project)
	}
	if f.DeviceID != "" {
		where = append(where, "s.device_id = ?")
		args = append(args, f.DeviceID)
	}
	if !f.Since.IsZero() {
		where = append(where, "x.time_ns >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "x.time_ns < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.MinSeverity > 0 {
		where = append(where, "x.severity >= ?")
		args = append(args, f.MinSeverity)
		if f.MinSeverity >= 13 {
			where = append(where, "x.severity >= 13") // lets the planner use the partial severity index
		}
	}
	if f.Text != "" {
		where = append(where, `x.body LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(f.Text)+"%")
	}
	q := `SELECT x.id, s.project, s.device_id, x.time_ns, x.observed_ns, x.severity, x.severity_text, x.body,
		x.attributes, x.trace_id, x.span_id, x.event_name, x.flags, x.received_at
		FROM logs x JOIN log_sources s ON s.id = x.source_id`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY x.time_ns DESC, x.id DESC LIMIT ? OFFSET ?`
	args = append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0))
	rows, err := db.r.QueryContext(ctx, q, args...)
	return collect(rows, true, err, "logs", func(rows *sql.Rows) (*lodestone.LogRecord, error) {
		var r lodestone.LogRecord
		var t, obs, flags, recv int64
		err := rows.Scan(&r.ID, &r.Project, &r.DeviceID, &t, &obs, &r.Severity, &r.SeverityText, &r.Body,
			&r.Attributes, &r.TraceID, &r.SpanID, &r.EventName, &flags, &recv)
		r.Time, r.ObservedTime = time.Unix(0, t).UTC(), time.Unix(0, obs).UTC()
		r.Flags, r.ReceivedAt = uint32(flags), fromMS(recv)
		return &r, err
	})
}

// likeEscape makes s match literally inside a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// DeleteLogsBefore implements lodestone.LogStore. It deletes in slices so the single writer is never held for
// long by a large purge.
func (db *DB) DeleteLogsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		db.wmu.Lock()
		res, err := db.w.ExecContext(ctx, `DELETE FROM logs WHERE id IN
			(SELECT id FROM logs WHERE time_ns < ? LIMIT 10000)`, cutoff.UnixNano())
		db.wmu.Unlock()
		if err != nil {
			return total, fmt.Errorf("sqlite: delete old logs: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < 10000 {
			return total, nil
		}
	}
}
