package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"

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
	raw     rawLogStmts
	sources *lru.Cache[string, int64] // project + "\x00" + device -> committed log_sources id
	// floor is the largest id retention has deleted while it was the table's largest (logIDFloorKey), until a
	// write has numbered records past it: SQLite numbers a new row after the largest one left, so without it
	// ids would be handed out again, and log tails resuming after an id would miss the records that got them.
	floor int64
}

// logIDFloorKey is the setting that keeps logStmts.floor across restarts. The name is "<table>.id_floor", which
// lodestone copy reads to start PostgreSQL's sequence after it.
const logIDFloorKey = "logs.id_floor"

func (l *logStmts) close() { l.raw.close() }

func (db *DB) prepareLogStmts(ctx context.Context) error {
	if db.logs != nil {
		return nil
	}
	l := &logStmts{sources: lru.New[string, int64](KeyCacheSize)}
	v, err := db.Setting(ctx, logIDFloorKey)
	if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		return err
	} else if err == nil {
		if l.floor, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("sqlite: setting %s: %w", logIDFloorKey, err)
		}
	}
	db.logs = l
	return nil
}

// WriteLogs implements lodestone.LogStore: every record in one transaction on the writer connection; each
// record's ID is set once they are committed. It runs on the writer's own go-sqlite3 connection: binding a dozen
// values per record through database/sql (argument conversion, interface boxing, clearing bindings) cost about
// as much as SQLite storing them.
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
	conn, err := db.w.Conn(stmtCtx)
	if err != nil {
		return fmt.Errorf("sqlite: log writer connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		rc, ok := dc.(interface{ Raw() *sqlite3.Conn })
		if !ok {
			return fmt.Errorf("sqlite: the writer is a %T, not a go-sqlite3 connection", dc)
		}
		return db.insertLogs(ctx, rc.Raw(), records)
	})
}

// rawLogStmts are the log inserts prepared on the writer's go-sqlite3 connection, guarded by DB.wmu.
type rawLogStmts struct {
	conn                     *sqlite3.Conn
	one, many, source, first *sqlite3.Stmt
	maxID                    *sqlite3.Stmt
}

func (r *rawLogStmts) close() {
	for _, s := range []*sqlite3.Stmt{r.one, r.many, r.source, r.first, r.maxID} {
		if s != nil {
			s.Close()
		}
	}
	*r = rawLogStmts{}
}

func (r *rawLogStmts) prepare(c *sqlite3.Conn) error {
	if r.conn == c {
		return nil
	}
	// A new connection (database/sql replaced a broken one): the old statements went with the old one.
	*r = rawLogStmts{}
	for _, p := range []struct {
		dst  **sqlite3.Stmt
		text string
	}{
		{&r.one, multiRowInsert("logs", logCols, 1, logWidth)},
		{&r.many, multiRowInsert("logs", logCols, rowsPerInsert, logWidth)},
		{&r.source, `INSERT INTO log_sources (project, device_id) VALUES (?1, ?2)
			ON CONFLICT (project, device_id) DO UPDATE SET project = excluded.project RETURNING id`},
		// The first record after retention emptied the top of the table takes its id explicitly (see floor).
		{&r.first, "INSERT INTO logs (id, " + logCols + ") VALUES (?" + strings.Repeat(", ?", logWidth) + ")"},
		{&r.maxID, `SELECT coalesce(max(id), 0) FROM logs`},
	} {
		st, _, err := c.PrepareFlags(p.text, sqlite3.PREPARE_PERSISTENT)
		if err != nil {
			r.close()
			return fmt.Errorf("sqlite: prepare log statements: %w", err)
		}
		*p.dst = st
	}
	r.conn = c
	return nil
}

// insertLogs stores records in one transaction on c.
func (db *DB) insertLogs(ctx context.Context, c *sqlite3.Conn, records []*lodestone.LogRecord) error {
	raw := &db.logs.raw
	if err := raw.prepare(c); err != nil {
		return err
	}
	if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: begin log write: %w", err)
	}
	defer func() {
		if !c.GetAutocommit() {
			c.Exec("ROLLBACK")
		}
	}()
	newSources := map[string]int64{}
	srcOf := func(r *lodestone.LogRecord) (int64, error) {
		key := r.Project + "\x00" + r.DeviceID
		if id, ok := db.logs.sources.Get(key); ok {
			return id, nil
		}
		if id, ok := newSources[key]; ok {
			return id, nil
		}
		st := raw.source
		if err := errors.Join(st.BindText(1, r.Project), st.BindText(2, r.DeviceID)); err != nil {
			return 0, err
		}
		var id int64
		if st.Step() {
			id = st.ColumnInt64(0)
		}
		if err := st.Reset(); err != nil {
			return 0, fmt.Errorf("sqlite: upsert log source %q: %w", r.DeviceID, err)
		}
		newSources[key] = id
		return id, nil
	}
	i, err := db.insertFirstLog(raw, records, srcOf)
	if err != nil {
		return err
	}
	for i < len(records) {
		st, n := raw.many, rowsPerInsert
		if len(records)-i < rowsPerInsert {
			st, n = raw.one, 1
		}
		for k, r := range records[i : i+n] {
			src, err := srcOf(r)
			if err != nil {
				return err
			}
			if err := bindLog(st, k*logWidth, src, r); err != nil {
				return fmt.Errorf("sqlite: insert logs: %w", err)
			}
		}
		if err := st.Exec(); err != nil {
			return fmt.Errorf("sqlite: insert logs: %w", err)
		}
		i += n
	}
	// The only writer appends rows at the largest rowid plus one, so this transaction's rows are consecutive.
	last := c.LastInsertRowID()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Exec("COMMIT"); err != nil {
		return fmt.Errorf("sqlite: commit logs: %w", err)
	}
	for k, id := range newSources {
		db.logs.sources.Add(k, id)
	}
	if len(records) > 0 {
		db.logs.floor = 0 // the table's largest id is now past it
	}
	for i, r := range records {
		r.ID = last - int64(len(records)-1-i)
	}
	return nil
}

// insertFirstLog stores records[0] with the id after the floor when the table holds no larger id (retention
// deleted the newest rows), so that the rows after it are numbered from there too. It returns how many records
// it stored: 0 or 1.
func (db *DB) insertFirstLog(raw *rawLogStmts, records []*lodestone.LogRecord,
	srcOf func(*lodestone.LogRecord) (int64, error)) (int, error) {
	floor := db.logs.floor
	if floor == 0 || len(records) == 0 {
		return 0, nil
	}
	var top int64
	if raw.maxID.Step() {
		top = raw.maxID.ColumnInt64(0)
	}
	if err := raw.maxID.Reset(); err != nil {
		return 0, fmt.Errorf("sqlite: read the largest log id: %w", err)
	}
	if top >= floor {
		return 0, nil
	}
	src, err := srcOf(records[0])
	if err != nil {
		return 0, err
	}
	st := raw.first
	if err := st.BindInt64(1, floor+1); err != nil {
		return 0, err
	}
	if err := bindLog(st, 1, src, records[0]); err != nil {
		return 0, fmt.Errorf("sqlite: insert logs: %w", err)
	}
	if err := st.Exec(); err != nil {
		return 0, fmt.Errorf("sqlite: insert logs: %w", err)
	}
	return 1, nil
}

// bindLog binds one record to the parameters after base, in logCols' order.
func bindLog(st *sqlite3.Stmt, base int, src int64, r *lodestone.LogRecord) error {
	for i, v := range [...]int64{src, r.Time.UnixNano(), r.ObservedTime.UnixNano(), int64(r.Severity)} {
		if err := st.BindInt64(base+1+i, v); err != nil {
			return err
		}
	}
	for i, v := range [...]string{r.SeverityText, r.Body, r.Attributes, r.TraceID, r.SpanID, r.EventName} {
		if err := st.BindText(base+5+i, v); err != nil {
			return err
		}
	}
	if err := st.BindInt64(base+11, int64(r.Flags)); err != nil {
		return err
	}
	return st.BindInt64(base+12, ms(r.ReceivedAt))
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
		n, err := db.deleteLogSlice(ctx, cutoff)
		db.wmu.Unlock()
		if err != nil {
			return total, fmt.Errorf("sqlite: delete old logs: %w", err)
		}
		total += n
		if n < 10000 {
			return total, nil
		}
	}
}

// deleteLogSlice deletes up to 10,000 records from before cutoff. When that takes the table's largest id (a record
// whose own time is old can be the newest one written), it keeps that id as the floor in the same transaction.
// Called with db.wmu held.
func (db *DB) deleteLogSlice(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var before, after int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM logs`).Scan(&before); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time_ns < ? LIMIT 10000)`,
		cutoff.UnixNano())
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM logs`).Scan(&after); err != nil {
		return 0, err
	}
	if after < before {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?1, ?2)
			ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), ?2)`, logIDFloorKey, before); err != nil {
			return 0, fmt.Errorf("keep the log id floor: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if after < before && db.logs != nil && db.logs.floor < before {
		db.logs.floor = before
	}
	return n, nil
}
