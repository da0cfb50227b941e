// Package opsql implements the operations stores (lodestone.AlertStore, lodestone.RetentionStore,
// lodestone.FleetCounter) once, over database/sql, for both backends, as store/otasql does for OTA: the tables are
// small or touched in batches, so one implementation with the same SQL beats two that drift. store/sqlite and
// store/postgres embed it.
package opsql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

var (
	_ lodestone.AlertStore     = (*Ops)(nil)
	_ lodestone.RetentionStore = (*Ops)(nil)
	_ lodestone.FleetCounter   = (*Ops)(nil)
)

// Ops is the operations part of a backend.
type Ops struct {
	w, r     *sql.DB
	lock     sync.Locker // SQLite's single-writer mutex; nil for PostgreSQL
	postgres bool
	name     string
}

// NewSQLite returns the store over SQLite's writer connection (guarded by lock, shared with telemetry writes) and
// its read pool.
func NewSQLite(w, r *sql.DB, lock sync.Locker) *Ops {
	return &Ops{w: w, r: r, lock: lock, name: "sqlite"}
}

// NewPostgres returns the store over a PostgreSQL database.
func NewPostgres(db *sql.DB) *Ops {
	return &Ops{w: db, r: db, postgres: true, name: "postgres"}
}

// q writes the query's placeholders for this backend.
func (s *Ops) q(query string) string {
	if s.postgres {
		return schema.Rebind(schema.Postgres, query)
	}
	return query
}

// tx runs fn in one write transaction.
func (s *Ops) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if s.lock != nil {
		s.lock.Lock()
		defer s.lock.Unlock()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %s: begin: %w", s.name, what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %s: %w", s.name, what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %s: commit: %w", s.name, what, err)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// FleetCounts implements lodestone.FleetCounter with one round trip. Callers cache it: counting rows of large
// tables is a scan of their smallest index. On PostgreSQL, whose count(*) visits every row (about 120 ms per
// million here), a table the planner estimates above a million rows reports that estimate instead (kept fresh by
// autovacuum); smaller tables are counted exactly.
func (s *Ops) FleetCounts(ctx context.Context) (lodestone.FleetCounts, error) {
	count := func(table string) string { return `(SELECT count(*) FROM ` + table + `)` }
	if s.postgres {
		count = func(table string) string {
			return `(SELECT CASE WHEN c.reltuples > 1e6 THEN c.reltuples::bigint ELSE (SELECT count(*) FROM ` + table +
				`) END FROM pg_class c WHERE c.oid = '` + table + `'::regclass)`
		}
	}
	var c lodestone.FleetCounts
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM devices),
		(SELECT count(*) FROM devices WHERE status = 'online'),
		`+count("faults")+`, `+count("metrics")+` + (SELECT coalesce(sum(n), 0) FROM metric_blocks), `+count("reboots")+`,
		(SELECT count(*) FROM device_groups)`).
		Scan(&c.Devices, &c.DevicesOnline, &c.Faults, &c.Metrics, &c.Reboots, &c.Groups)
	if err != nil {
		return c, fmt.Errorf("%s: count rows: %w", s.name, err)
	}
	return c, nil
}
