// Package postgres is the scale-out storage backend: lodestone's records in a PostgreSQL database that several
// replicas share. It implements the same lodestone.Store as the embedded SQLite backend and passes the same
// conformance suite; its schema lives beside SQLite's in store/schema.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/lru"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/opsql"
	"github.com/lodestone-fleet/lodestone/store/otasql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Ensure the backend implements the whole store.
var _ lodestone.Store = (*DB)(nil)

// Options tune the connection pool.
type Options struct {
	// MaxConns bounds the pool; 0 keeps pgx's default (4 or the number of CPUs, whichever is larger).
	MaxConns int32
	// NoMigrate opens without migrating, for `lodestone migrate status` on a database that must not change.
	NoMigrate bool
	// SealAfter, when positive, runs the compactor: every minute it seals metric points older than this into
	// compressed blocks (blocks.go; DefaultSealAfter is what the server uses). 0 leaves points as rows.
	SealAfter time.Duration
}

// DB is a PostgreSQL-backed lodestone.Store.
type DB struct {
	*otasql.Store // firmware, targets and campaigns, through database/sql over the same pool
	*opsql.Ops    // alert queue, retention and counts, through database/sql over the same pool
	*auditsql.Log // the audit log (every audited write also appends in its own transaction)

	pool *pgxpool.Pool
	url  string

	// keys caches metric key ids. Keys are never deleted or renumbered, so an id committed by any replica stays
	// valid; only ids from committed transactions enter the cache. Both caches are keyed by client-supplied
	// names, so they hold at most KeyCacheSize ids each; a write copies the ids it uses out under mu, so an
	// eviction during the write cannot lose one.
	mu      sync.Mutex
	keys    *lru.Cache[string, int64]
	sources *lru.Cache[string, int64] // log sources (project, device) -> id, same rules as keys

	sqldb *sql.DB // database/sql over the pool, for otasql

	stopSeal chan struct{} // the compactor (Options.SealAfter)
	sealDone chan struct{}
}

// KeyCacheSize bounds the metric key and log source id caches; past it, the least recently used id is looked up
// again on its next use.
var KeyCacheSize = 1 << 16

// Open connects to the database at url (postgres://…), checks that it answers, and migrates it to the newest
// schema unless opts.NoMigrate is set.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", redact(url), err)
	}
	db := &DB{pool: pool, url: url, keys: lru.New[string, int64](KeyCacheSize),
		sources: lru.New[string, int64](KeyCacheSize)}
	db.sqldb = stdlib.OpenDBFromPool(pool)
	db.Store = otasql.NewPostgres(db.sqldb)
	db.Ops = opsql.NewPostgres(db.sqldb)
	db.Log = auditsql.NewPostgres(db.sqldb)
	if !opts.NoMigrate {
		if err := db.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if opts.SealAfter > 0 {
		db.stopSeal, db.sealDone = make(chan struct{}), make(chan struct{})
		go db.sealer(opts.SealAfter, db.stopSeal, db.sealDone)
	}
	return db, nil
}

// migrationLock serialises migrations of replicas that start together; the key is arbitrary but fixed.
const migrationLock = 0x6c6f6465 // "lode"

// Migrate applies pending migrations. Replicas starting at once take turns under an advisory lock, so each
// migration runs exactly once.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: take the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)

	sqldb := stdlib.OpenDBFromPool(db.pool)
	defer sqldb.Close()
	p, err := schema.Provider(schema.Postgres, sqldb)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// MigrationStatus reports the applied and pending schema versions.
func (db *DB) MigrationStatus(ctx context.Context) (schema.Status, error) {
	sqldb := stdlib.OpenDBFromPool(db.pool)
	defer sqldb.Close()
	p, err := schema.Provider(schema.Postgres, sqldb)
	if err != nil {
		return schema.Status{}, err
	}
	return schema.StatusOf(ctx, p)
}

// Pool is the connection pool, for the packages that share the database: the event bus, leadership, copies.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool after in-flight queries finish.
func (db *DB) Close() error {
	if db.stopSeal != nil {
		close(db.stopSeal)
		<-db.sealDone
		db.stopSeal = nil
	}
	db.sqldb.Close()
	db.pool.Close()
	return nil
}

// redact hides a password in a database URL so it can be logged.
func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "the database"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// retryable is schema.Retryable, the rule every store shares.
var retryable = schema.Retryable

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// args collects positional parameters and hands out their $n placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Status reports the schema version of the database at url without changing it.
func Status(ctx context.Context, url string) (schema.Status, error) {
	db, err := Open(ctx, url, Options{NoMigrate: true, MaxConns: 2})
	if err != nil {
		return schema.Status{}, err
	}
	defer db.Close()
	return db.MigrationStatus(ctx)
}

// Ping reports whether the database answers, for readiness checks.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}
