// Package sqlite is the embedded storage backend: one SQLite file in WAL mode, written by a single connection
// and read through a pool, with versioned migrations embedded in the binary.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/lru"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/opsql"
	"github.com/lodestone-fleet/lodestone/store/otasql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Ensure the backend implements the whole store.
var _ lodestone.Store = (*DB)(nil)

// Options tune how the database file is opened.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "FULL" (default) survives power loss; "NORMAL" survives a
	// process crash (kill -9) but may lose the last commits on power loss.
	Synchronous string
	// Logger receives what the background checkpointer cannot return: a failing WAL checkpoint. Default
	// slog.Default().
	Logger *slog.Logger
	// Readers is the size of the read pool; 0 means one per CPU, at least 4.
	Readers int
	// SealAfter, when positive, runs the compactor: every minute it seals metric points older than this into
	// compressed blocks (blocks.go; DefaultSealAfter is what the server uses). 0 leaves points as rows.
	SealAfter time.Duration
}

// DB is a SQLite-backed lodestone.Store.
type DB struct {
	*otasql.Store // firmware, targets and campaigns, written through w under wmu
	*opsql.Ops    // alert queue, retention and counts, written through w under wmu
	*auditsql.Log // the audit log, written through w under wmu (and by every audited write in its transaction)

	path string
	w    *sql.DB    // exactly one connection: SQLite allows one writer, and one connection means no lock waits
	r    *sql.DB    // read pool; WAL lets readers run beside the writer
	rq   *readStmts // the read pool's cached statements (series reads)

	// wmu serialises write transactions and guards the writer-owned state below.
	wmu   sync.Mutex
	stmts *writeStmts
	keys  *lru.Cache[string, int64] // metric key name -> id; only ids that are committed
	logs  *logStmts                 // prepared on the first log write

	now func() time.Time
	log *slog.Logger

	ckpt     *sql.DB // one connection that copies the WAL back into the database file
	stopCkpt chan struct{}
	ckptDone chan struct{}

	stopSeal chan struct{} // the compactor (Options.SealAfter), stopped before Close takes wmu
	sealDone chan struct{}
}

// KeyCacheSize bounds the metric key and log source id caches. Both are keyed by client-supplied names (metric
// keys in ferrite chunks, OTLP project and device), so unbounded they would grow with every name ever sent; past
// the bound, the least recently used id is looked up again on its next use.
var KeyCacheSize = 1 << 16

// checkpointInterval is how often committed pages are copied from the WAL into the database file.
const checkpointInterval = 250 * time.Millisecond

// checkpointer runs PASSIVE checkpoints, which never block the writer or readers, so that the single writer
// connection does not stall on checkpoint I/O. A failure is logged when it starts and when it ends, not on every
// tick: while checkpoints fail the WAL only grows, which an operator must hear about.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-db.stopCkpt:
			return
		case <-t.C:
			err := walCheckpoint(db.ckpt, "PASSIVE")
			switch {
			case err != nil && !failing:
				db.log.Error("sqlite: WAL checkpoint failed; the WAL file grows until one succeeds", "path", db.path,
					"err", err)
			case err == nil && failing:
				db.log.Info("sqlite: WAL checkpoints succeed again", "path", db.path)
			}
			failing = err != nil
		}
	}
}

// walCheckpoint runs one checkpoint on c. A busy result (a reader still on old pages) is no error: the next
// checkpoint finishes the job. Tests replace it to make it fail.
var walCheckpoint = func(c *sql.DB, mode string) error {
	var busy, logPages, moved int
	if err := c.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logPages, &moved); err != nil {
		return fmt.Errorf("sqlite: WAL checkpoint (%s): %w", mode, err)
	}
	return nil
}

// Open opens (creating if needed) the database file at path and migrates it to the newest schema.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	removeStaleBackups(path, log)
	sync := opts.Synchronous
	if sync == "" {
		sync = "FULL"
	}
	readers := opts.Readers
	if readers <= 0 {
		readers = max(4, runtime.NumCPU())
	}

	w, err := sql.Open(driverName, dsn(path, sync, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	db := &DB{path: path, w: w, keys: lru.New[string, int64](KeyCacheSize), now: time.Now, log: log}
	// The writer checkpoints only as a backstop; the checkpointer goroutine does it off the write path.
	if _, err := w.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 65536"); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: set checkpoint interval: %w", err)
	}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open(driverName, dsn(path, sync, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db.r = r
	db.rq = &readStmts{db: r}
	db.Store = otasql.NewSQLite(w, r, &db.wmu)
	db.Ops = opsql.NewSQLite(w, r, &db.wmu)
	db.Log = auditsql.NewSQLite(w, r, &db.wmu)
	if db.ckpt, err = sql.Open(driverName, dsn(path, sync, false)); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open checkpointer %s: %w", path, err)
	}
	db.ckpt.SetMaxOpenConns(1)
	db.stopCkpt = make(chan struct{})
	db.ckptDone = make(chan struct{})
	go db.checkpointer()
	if db.stmts, err = prepareWriteStmts(ctx, w); err != nil {
		db.Close()
		return nil, err
	}
	if opts.SealAfter > 0 {
		db.stopSeal, db.sealDone = make(chan struct{}), make(chan struct{})
		go db.sealer(opts.SealAfter, db.stopSeal, db.sealDone)
	}
	return db, nil
}

// dsn builds the connection string. busy_timeout comes first so that every later pragma already waits for locks.
func dsn(path, sync string, readOnly bool) string {
	// busy_timeout first: the driver's own default applies only when no PRAGMA is given.
	pragmas := []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(" + sync + ")", "foreign_keys(1)",
		"cache_size(-32000)"}
	q := url.Values{}
	if readOnly {
		pragmas = append(pragmas, "query_only(1)")
		// BEGIN DEFERRED: a reader never takes the write lock (the driver's default is IMMEDIATE).
		q.Set("_txlock", "deferred")
	} else {
		// BEGIN IMMEDIATE: take the write lock up front instead of failing on upgrade.
		q.Set("_txlock", "immediate")
		// Statement journals in memory: a group commit's multi-row INSERTs otherwise spill their journal past
		// 64 KiB to a temporary file, a write system call per page (a quarter of loadgen's CPU in a profile).
		pragmas = append(pragmas, "temp_store(MEMORY)")
	}
	return URI(path, q, pragmas...)
}

func (db *DB) migrate(ctx context.Context) error {
	// ferrite-server's flags are accepted, so its --db may point at its own database. Its schema is not ours;
	// say so instead of failing inside a migration.
	var ferrite, ours int
	err := db.w.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE name = 'fault_events'), count(*) FILTER (WHERE name = 'goose_db_version')
		FROM sqlite_master WHERE type = 'table'`).Scan(&ferrite, &ours)
	if err != nil {
		return fmt.Errorf("sqlite: inspect %s: %w", db.path, err)
	}
	if ferrite > 0 && ours == 0 {
		return fmt.Errorf("sqlite: %s is a ferrite-server database; lodestone keeps its own schema, so give it a "+
			"new file (for example --db lodestone.db) and bring ferrite's data over with "+
			"`lodestone import-ferrite %s`", db.path, db.path)
	}
	p, err := db.migrator()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) migrator() (*goose.Provider, error) {
	return schema.Provider(schema.SQLite, db.w)
}

// MigrationStatus reports the applied and pending schema versions.
func (db *DB) MigrationStatus(ctx context.Context) (schema.Status, error) {
	p, err := db.migrator()
	if err != nil {
		return schema.Status{}, err
	}
	return schema.StatusOf(ctx, p)
}

// Path returns the database file.
func (db *DB) Path() string { return db.path }

// Close closes the statement cache and both pools. It waits for a running write transaction to finish.
func (db *DB) Close() error {
	if db.stopSeal != nil {
		close(db.stopSeal)
		<-db.sealDone
		db.stopSeal = nil
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	var first error
	if db.stopCkpt != nil {
		close(db.stopCkpt)
		<-db.ckptDone
		db.stopCkpt = nil
		db.ckpt.Close()
	}
	if db.logs != nil {
		db.logs.close()
		db.logs = nil
	}
	if db.stmts != nil {
		db.stmts.close()
		db.stmts = nil
	}
	if db.rq != nil {
		db.rq.close()
	}
	if db.r != nil {
		if err := db.r.Close(); err != nil {
			first = err
		}
	}
	if db.w != nil {
		// A final checkpoint keeps the main file current and the WAL small for the next start. The data is safe
		// in the WAL without it, but a failure here is a disk problem the caller should see.
		if err := walCheckpoint(db.w, "TRUNCATE"); err != nil && first == nil {
			first = err
		}
		if err := db.w.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// ReadDB is the read pool, for tools that read the raw tables (lodestone copy); it cannot write.
func (db *DB) ReadDB() *sql.DB { return db.r }

// Status reports the schema version of the database file at path without changing it.
func Status(ctx context.Context, path string) (schema.Status, error) {
	if _, err := os.Stat(path); err != nil {
		return schema.Status{}, fmt.Errorf("sqlite: %w", err)
	}
	db, err := sql.Open(driverName, dsn(path, "FULL", true))
	if err != nil {
		return schema.Status{}, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer db.Close()
	p, err := schema.Provider(schema.SQLite, db)
	if err != nil {
		return schema.Status{}, err
	}
	return schema.StatusOf(ctx, p)
}

// Ping reports whether the database answers, for readiness checks. It uses a read connection, so it never waits
// behind the single writer under load.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", db.path, err)
	}
	return nil
}
