// Package auditsql keeps the audit log once, over SQL both backends speak, as store/otasql does for OTA: the
// hash-chained append that every audited store write makes inside its own transaction, the images of a target
// before and after a change, and lodestone.AuditStore over database/sql. store/sqlite and store/postgres embed Log
// and call Begin and Done from their write methods.
package auditsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Tx is the part of a write transaction the audit log uses, so that database/sql (SQL) and pgx transactions
// (store/postgres adapts its own) both record entries.
type Tx interface {
	QueryRow(ctx context.Context, query string, args ...any) Row
	Exec(ctx context.Context, query string, args ...any) error
}

// Row is one result row.
type Row interface{ Scan(dest ...any) error }

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) QueryRow(ctx context.Context, query string, args ...any) Row {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

// SQL adapts a database/sql transaction.
func SQL(tx *sql.Tx) Tx { return sqlTx{tx} }

// Change is an audited write in progress: the entry with its before image, waiting for Done. A nil *Change (the
// write is no operator action) records nothing.
type Change struct {
	d     schema.Dialect
	e     *lodestone.AuditEntry
	after bool // read the after image in Done
}

// Begin starts recording the write of action (unless the caller declared another, see lodestone.WithAudit) to
// the target of kind kind, reading its before image in tx. It returns nil when ctx carries no operator. Call it
// before the change, in the change's transaction; target may be empty when the change creates it.
func Begin(ctx context.Context, tx Tx, d schema.Dialect, action, kind, target string) (*Change, error) {
	e := lodestone.AuditFor(ctx, action)
	if e == nil {
		return nil, nil
	}
	e.TargetKind, e.Target = kind, target
	c := &Change{d: d, e: e, after: true}
	if target != "" {
		img, err := image(ctx, tx, d, kind, target)
		if err != nil {
			return nil, err
		}
		e.Before = img
	}
	return c, nil
}

// Done reads the after image of the target (target, when not empty, names it now: the id a create handed out)
// and appends the entry in tx. Call it after the change, as the transaction's last statement, so the chain head
// is held for as short a time as possible.
func (c *Change) Done(ctx context.Context, tx Tx, target string) error {
	if c == nil {
		return nil
	}
	if target != "" {
		c.e.Target = target
	}
	if c.after && c.e.Target != "" {
		img, err := image(ctx, tx, c.d, c.e.TargetKind, c.e.Target)
		if err != nil {
			return err
		}
		c.e.After = img
	}
	return Append(ctx, tx, c.d, c.e)
}

// SetAfter replaces the after image with v's JSON, for a change whose outcome is not a row (a bulk
// registration's results); v must hold no secret.
func (c *Change) SetAfter(v []byte) {
	if c != nil {
		c.e.After, c.after = v, false
	}
}

// Append adds e to the chain in tx: it takes the chain head (FOR UPDATE on PostgreSQL, so appenders on every
// replica take turns; SQLite's write transaction already excludes them), gives e the next id, the head's hash as
// PrevHash and its own Hash, and moves the head.
func Append(ctx context.Context, tx Tx, d schema.Dialect, e *lodestone.AuditEntry) error {
	lock := ""
	if d == schema.Postgres {
		lock = " FOR UPDATE"
	}
	if err := tx.Exec(ctx, `INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '')
		ON CONFLICT (id) DO NOTHING`); err != nil {
		return fmt.Errorf("audit: make the chain head: %w", err)
	}
	var lastID int64
	var lastHash string
	if err := tx.QueryRow(ctx, `SELECT last_id, last_hash FROM audit_head WHERE id = 1`+lock).
		Scan(&lastID, &lastHash); err != nil {
		return fmt.Errorf("audit: read the chain head: %w", err)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = time.UnixMilli(e.Time.UnixMilli()).UTC()
	// Images are kept in encoding/json's own form (compact, HTML escaped), so the text an API client reads back
	// inside a JSON answer is the text that was hashed, whatever the database's JSON functions wrote.
	for _, img := range []*json.RawMessage{&e.Before, &e.After} {
		if len(*img) == 0 {
			*img = nil
			continue
		}
		b, err := json.Marshal(*img)
		if err != nil {
			return fmt.Errorf("audit: %s image: %w", e.Action, err)
		}
		*img = b
	}
	e.ID, e.PrevHash = lastID+1, lastHash
	e.Hash = e.ComputeHash()
	if err := tx.Exec(ctx, schema.Rebind(d, `INSERT INTO audit_log (id, time, actor_kind, actor, actor_id, action,
		target_kind, target, before_json, after_json, client_addr, request_id, via, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), e.ID, e.Time.UnixMilli(), e.ActorKind, e.Actor,
		e.ActorID, e.Action, e.TargetKind, e.Target, string(e.Before), string(e.After), e.ClientAddr, e.RequestID,
		e.Via, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	if err := tx.Exec(ctx, schema.Rebind(d, `UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1`),
		e.ID, e.Hash); err != nil {
		return fmt.Errorf("audit: move the chain head: %w", err)
	}
	return nil
}

// Log is lodestone.AuditStore over database/sql.
type Log struct {
	w, r *sql.DB
	lock sync.Locker // SQLite's single-writer mutex; nil for PostgreSQL
	d    schema.Dialect
}

var _ lodestone.AuditStore = (*Log)(nil)

// NewSQLite returns the log over SQLite's writer connection (guarded by lock) and its read pool.
func NewSQLite(w, r *sql.DB, lock sync.Locker) *Log {
	return &Log{w: w, r: r, lock: lock, d: schema.SQLite}
}

// NewPostgres returns the log over a PostgreSQL database.
func NewPostgres(db *sql.DB) *Log { return &Log{w: db, r: db, d: schema.Postgres} }

func (l *Log) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if l.lock != nil {
		l.lock.Lock()
		defer l.lock.Unlock()
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %s: begin: %w", l.d, what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %s: %w", l.d, what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %s: commit: %w", l.d, what, err)
	}
	return nil
}

// AppendAudit implements lodestone.AuditLog, for actions that change no row (a backup download). Actor, request
// and time are the caller's; ID, PrevHash and Hash are set.
func (l *Log) AppendAudit(ctx context.Context, e *lodestone.AuditEntry) error {
	if e.Action == "" || e.ActorKind == "" {
		return lodestone.Errorf(lodestone.EINVALID, "an audit entry needs an action and an actor kind")
	}
	return l.tx(ctx, "append audit entry", func(tx *sql.Tx) error { return Append(ctx, SQL(tx), l.d, e) })
}

const columns = `id, time, actor_kind, actor, actor_id, action, target_kind, target, before_json, after_json,
	client_addr, request_id, via, prev_hash, hash`

// FindAudit implements lodestone.AuditLog: newest first, keyset-paginated by id.
func (l *Log) FindAudit(ctx context.Context, f lodestone.AuditFilter) ([]*lodestone.AuditEntry, error) {
	var conds []string
	var args []any
	add := func(cond string, v ...any) { conds, args = append(conds, cond), append(args, v...) }
	if f.Actor != "" {
		add(`actor = ?`, f.Actor)
	}
	if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
		add(`substr(action, 1, ?) = ?`, len(prefix)+1, prefix+".")
	} else if f.Action != "" {
		add(`action = ?`, f.Action)
	}
	if f.Target != "" {
		add(`target = ?`, f.Target)
	}
	if f.TargetKind != "" {
		add(`target_kind = ?`, f.TargetKind)
	}
	if !f.Since.IsZero() {
		add(`time >= ?`, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		add(`time < ?`, f.Until.UnixMilli())
	}
	if f.BeforeID > 0 {
		add(`id < ?`, f.BeforeID)
	}
	q := `SELECT ` + columns + ` FROM audit_log`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	q += ` ORDER BY id DESC LIMIT ` + strconv.Itoa(lodestone.ClampLimit(f.Limit))
	rows, err := l.r.QueryContext(ctx, schema.Rebind(l.d, q), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: find audit entries: %w", l.d, err)
	}
	defer rows.Close()
	out := []*lodestone.AuditEntry{}
	for rows.Next() {
		var e lodestone.AuditEntry
		var t int64
		var before, after string
		if err := rows.Scan(&e.ID, &t, &e.ActorKind, &e.Actor, &e.ActorID, &e.Action, &e.TargetKind, &e.Target,
			&before, &after, &e.ClientAddr, &e.RequestID, &e.Via, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("%s: find audit entries: %w", l.d, err)
		}
		e.Time = time.UnixMilli(t).UTC()
		if before != "" {
			e.Before = []byte(before)
		}
		if after != "" {
			e.After = []byte(after)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: find audit entries: %w", l.d, err)
	}
	return out, nil
}

// AuditHead implements lodestone.AuditStore.
func (l *Log) AuditHead(ctx context.Context) (lodestone.AuditHead, error) {
	var h lodestone.AuditHead
	if err := l.r.QueryRowContext(ctx, `SELECT coalesce(max(last_id), 0), coalesce(max(last_hash), '')
		FROM audit_head`).
		Scan(&h.ID, &h.Hash); err != nil {
		return h, fmt.Errorf("%s: read the audit chain head: %w", l.d, err)
	}
	return h, nil
}

// PruneAudit implements lodestone.AuditStore. Ids grow with time, so the entries older than before are a prefix
// of the chain: the prune deletes through the newest of them and records its id and hash in the prune entry,
// which the next entry after the prefix (or the prune entry itself) links to.
func (l *Log) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := l.tx(ctx, "prune audit entries", func(tx *sql.Tx) error {
		var through sql.NullInt64
		if err := tx.QueryRowContext(ctx, schema.Rebind(l.d, `SELECT max(id) FROM audit_log WHERE time < ?`),
			before.UnixMilli()).Scan(&through); err != nil {
			return err
		}
		if !through.Valid {
			return nil
		}
		var hash string
		if err := tx.QueryRowContext(ctx, schema.Rebind(l.d, `SELECT hash FROM audit_log WHERE id = ?`),
			through.Int64).Scan(&hash); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, schema.Rebind(l.d, `DELETE FROM audit_log WHERE id <= ?`), through.Int64)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		e := lodestone.AuditFor(ctx, lodestone.ActionAuditPrune)
		if e == nil { // the scheduled prune: lodestone itself
			e = &lodestone.AuditEntry{ActorKind: lodestone.ActorSystem, Actor: "audit-retention",
				Action: lodestone.ActionAuditPrune}
		}
		e.Action, e.TargetKind = lodestone.ActionAuditPrune, lodestone.AuditLogTarget
		e.After = lodestone.AuditPruneAfter(through.Int64, hash)
		return Append(ctx, SQL(tx), l.d, e)
	})
	return n, err
}
