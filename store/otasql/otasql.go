// Package otasql implements lodestone.OTAStore once, over database/sql, for both backends: the OTA tables are
// small and written rarely, so one implementation with the same SQL (placeholders rewritten for PostgreSQL)
// beats two copies that drift. store/sqlite and store/postgres embed it.
package otasql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Ensure the implementation is complete.
var _ lodestone.OTAStore = (*Store)(nil)

// Store is the OTA part of a backend.
type Store struct {
	w, r     *sql.DB
	lock     sync.Locker // SQLite's single-writer mutex; nil for PostgreSQL
	postgres bool
	name     string // for error messages

	// Every ingest request asks for its devices' targets; most fleets have none most of the time. The store
	// remembers for noTargetsFor that the table was empty, so those requests cost no query. Every write through
	// this store bumps writes and drops the memory at once; another replica's new target is seen within
	// noTargetsFor.
	hintMu    sync.Mutex
	noneUntil time.Time
	writes    uint64
}

// noTargetsFor is how long an empty ota_targets table is taken as still empty without asking again.
const noTargetsFor = 2 * time.Second

// NewSQLite returns the store over SQLite's writer connection (guarded by lock, shared with telemetry writes) and
// its read pool.
func NewSQLite(w, r *sql.DB, lock sync.Locker) *Store {
	return &Store{w: w, r: r, lock: lock, name: "sqlite"}
}

// NewPostgres returns the store over a PostgreSQL database.
func NewPostgres(db *sql.DB) *Store {
	return &Store{w: db, r: db, postgres: true, name: "postgres"}
}

// q writes the query's placeholders for this backend.
func (s *Store) q(query string) string {
	if s.postgres {
		return schema.Rebind(schema.Postgres, query)
	}
	return query
}

// forUpdate locks a selected row on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the database.
func (s *Store) forUpdate() string {
	if s.postgres {
		return " FOR UPDATE"
	}
	return ""
}

// forShare share-locks a selected row on PostgreSQL, so a concurrent FOR UPDATE of it waits.
func (s *Store) forShare() string {
	if s.postgres {
		return " FOR SHARE"
	}
	return ""
}

// tx runs fn in one write transaction, again when PostgreSQL aborted it for a deadlock or a serialization
// failure: fn must only set what it returns, never add to it.
func (s *Store) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if s.lock != nil {
		s.lock.Lock()
		defer s.lock.Unlock()
	}
	var err error
	for attempt := 1; attempt <= schema.Attempts; attempt++ {
		if err = s.tx1(ctx, what, fn); !schema.Retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return err
}

func (s *Store) tx1(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %s: begin: %w", s.name, what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		if lodestone.ErrorCode(err) != lodestone.EINTERNAL {
			return err
		}
		return fmt.Errorf("%s: %s: %w", s.name, what, err)
	}
	err = tx.Commit()
	s.hintMu.Lock()
	s.writes++ // also on a failed commit: the outcome is unknown
	s.noneUntil = time.Time{}
	s.hintMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %s: commit: %w", s.name, what, err)
	}
	return nil
}

// noTargets reports whether the ota_targets table is known to be empty, asking the database at most once per
// noTargetsFor.
func (s *Store) noTargets(ctx context.Context) (bool, error) {
	now := time.Now()
	s.hintMu.Lock()
	if now.Before(s.noneUntil) {
		s.hintMu.Unlock()
		return true, nil
	}
	gen := s.writes
	s.hintMu.Unlock()
	var some bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM ota_targets)`).Scan(&some); err != nil {
		return false, s.wrap(err, "look for OTA targets")
	}
	if !some {
		s.hintMu.Lock()
		if s.writes == gen { // no local write raced the query
			s.noneUntil = now.Add(noTargetsFor)
		}
		s.hintMu.Unlock()
	}
	return !some, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

func nullString(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}

func nullInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

func ptr[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func notFound(err error, msg string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return lodestone.Errorf(lodestone.ENOTFOUND, "%s", msg)
	}
	return err
}

// uniqueViolation reports a UNIQUE constraint failure in either dialect.
func uniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "SQLSTATE 23505")
}

type scanner interface{ Scan(dest ...any) error }

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func collect[T any](rows *sql.Rows, err error, scan func(scanner) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// audited runs fn in one write transaction that also records the operator's action on the target of kind kind
// (see auditsql.Begin): the change and its entry commit or roll back together. fn returns the target's id when
// it created it, else "".
func (s *Store) audited(ctx context.Context, what, action, kind, target string,
	fn func(tx *sql.Tx) (string, error)) error {
	d := schema.SQLite
	if s.postgres {
		d = schema.Postgres
	}
	return s.tx(ctx, what, func(tx *sql.Tx) error {
		a, err := auditsql.Begin(ctx, auditsql.SQL(tx), d, action, kind, target)
		if err != nil {
			return err
		}
		id, err := fn(tx)
		if err != nil {
			return err
		}
		return a.Done(ctx, auditsql.SQL(tx), id)
	})
}
