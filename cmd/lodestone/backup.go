package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/durable"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/transfer"
)

// backupCmd saves a consistent snapshot of the database to a file: from a running server (GET /admin/backup)
// with --server, otherwise from the local SQLite database, which the server may be writing meanwhile.
type backupCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const backupUsage = `Saves a consistent snapshot of the whole database to FILE, a SQLite file, while the server keeps running and
ingesting: everything committed before the snapshot began is in it, nothing half-written.

  --server URL   download it from a running server (GET /admin/backup, admin role): --token, or
                 BASIC_AUTH_USER/BASIC_AUTH_PASS
  (no --server)  snapshot the local database (--db or --data-dir, as serve uses them); a PostgreSQL
                 database is read in one REPEATABLE READ transaction into the same SQLite format

The file is written beside FILE under a temporary name, checked (SQLite integrity check, lodestone schema) and
only then renamed to FILE; an existing FILE is kept unless --force. Restore it with 'lodestone restore FILE'.
Blobs (firmware images, ELF files) are not in the database: back up the blob directory or bucket as well.

Examples:
  lodestone backup nightly.db --server https://fleet.example.com --token $TOKEN
  lodestone backup /backups/nightly.db --data-dir /srv/lodestone --json
`

// backupInfo is what a backup file holds, from reading it back.
type backupInfo struct {
	File          string           `json:"file"`
	Bytes         int64            `json:"bytes"`
	Source        string           `json:"source"`
	Taken         string           `json:"taken,omitempty"`
	SchemaVersion int64            `json:"schema_version"`
	Rows          map[string]int64 `json:"rows"`
}

func (c *backupCmd) spec() cmdSpec {
	return cmdSpec{use: "backup FILE", short: "download a consistent snapshot of a server's database, or take one of the local database",
		long: backupUsage, args: usageArgs(exactArgs("one FILE")), setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			o := &backupOptions{}
			o.server, o.token = remoteFlags(fs, c.getenv)
			fs.BoolVar(&o.asJSON, "json", false, "print a JSON summary instead of text (and no progress bar)")
			fs.BoolVar(&o.force, "force", false, "replace FILE if it exists")
			fs.DurationVar(&o.timeout, "timeout", 6*time.Hour, "give up after this long")
			return func(ctx context.Context, args []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.backup(ctx, cfg, args[0], *o)
			}
		}}
}

func (c *backupCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

type backupOptions struct {
	server, token *string
	asJSON, force bool
	timeout       time.Duration
}

func (c *backupCmd) backup(ctx context.Context, cfg Config, file string, o backupOptions) error {
	server, token, asJSON, force, timeout := o.server, o.token, o.asJSON, o.force, o.timeout
	if _, err := os.Stat(file); err == nil && !force {
		return fmt.Errorf("backup: %s exists; choose another name or pass --force", file)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()

	info := backupInfo{File: file}
	var body io.ReadCloser
	var size int64
	if *server != "" {
		r := newRemote(*server, *token, c.getenv, 0) // the context bounds the download, not a client timeout
		resp, err := r.request(ctx, "/admin/backup")
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		body, size = resp.Body, resp.ContentLength
		info.Source, info.Taken = r.server, resp.Header.Get("X-Backup-Taken")
	} else {
		spec, err := parseDB(cfg.DB)
		if err != nil {
			return err
		}
		store, err := openReadOnly(ctx, spec.target)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer store.Close()
		// Recorded before the snapshot, as a download is: the copy holds its own entry.
		if err := auditLocal(ctx, spec.target, "backup.local", lodestone.AuditBackup,
			map[string]string{"file": file}); err != nil {
			return fmt.Errorf("backup: record it in the audit log: %w", err)
		}
		var b lodestone.BackupService
		if pg, ok := store.(*postgres.DB); ok {
			b = &transfer.PostgresBackup{Pool: pg.Pool(), Dir: filepath.Dir(file)}
		} else {
			b = store.(lodestone.BackupService)
		}
		snap, err := b.Backup(ctx)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		body, size = snap, snap.Size
		info.Source, info.Taken = spec.target, snap.Taken.UTC().Format(time.RFC3339Nano)
	}
	defer body.Close()

	var in io.Reader = body
	var bar *progressBar
	if !asJSON {
		bar = newProgressBar(c.stderr, "backup", size, true)
		in = &progressReader{r: body, bar: bar}
	}
	n, err := io.Copy(tmp, in)
	if err != nil {
		return fmt.Errorf("backup: after %s: %w", bytesize(n), err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("backup: got %d of %d bytes", n, size)
	}
	if bar != nil {
		bar.Done(n)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if info.SchemaVersion, info.Rows, err = inspectBackup(ctx, tmp.Name()); err != nil {
		return fmt.Errorf("backup: the downloaded file is not a usable backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(filepath.Dir(file)); err != nil {
		return fmt.Errorf("backup: %s is written but may not survive a power loss: %w", file, err)
	}
	if *server == "" { // a server records the backups it serves
		if spec, err := parseDB(cfg.DB); err == nil {
			if err := recordLocalBackup(ctx, spec, time.Now()); err != nil {
				fmt.Fprintf(c.stderr, "lodestone: backup saved, but not recorded for 'lodestone doctor': %v\n", err)
			}
		}
	}
	info.Bytes = n
	if asJSON {
		return jsonOut(c.stdout, info)
	}
	fmt.Fprintf(c.stdout, "saved %s (%s, schema version %d, taken %s): %d devices, %d faults, %d metrics, %d reboots\n",
		file, bytesize(n), info.SchemaVersion, info.Taken, info.Rows["devices"], info.Rows["faults"],
		info.Rows["metrics"], info.Rows["reboots"])
	return nil
}

// reportedTables are counted when a backup is checked.
var reportedTables = []string{"devices", "faults", "metrics", "reboots", "heartbeats", "crash_groups", "users",
	"tokens", "firmware_artifacts", "ota_campaigns"}

// inspectBackup checks that path is a sound SQLite file holding a lodestone schema this build can open, and
// counts its main tables.
func inspectBackup(ctx context.Context, path string) (int64, map[string]int64, error) {
	head := make([]byte, 16)
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || string(head) != "SQLite format 3\x00" {
		return 0, nil, errors.New("not a SQLite database file")
	}
	db, err := sql.Open(sqlite.DriverName, sqlite.URI(path, url.Values{"mode": {"ro"}, "_txlock": {"deferred"}}, "query_only(1)"))
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return 0, nil, fmt.Errorf("integrity check: %w", err)
	}
	if check != "ok" {
		return 0, nil, fmt.Errorf("integrity check: %s", check)
	}
	p, err := schema.Provider(schema.SQLite, db)
	if err != nil {
		return 0, nil, err
	}
	st, err := schema.StatusOf(ctx, p)
	if err != nil || st.Current == 0 {
		return 0, nil, fmt.Errorf("no lodestone schema in it (%v)", err)
	}
	if st.Current > st.Latest {
		return st.Current, nil, fmt.Errorf("schema version %d is newer than this lodestone knows (%d); use a newer "+
			"lodestone", st.Current, st.Latest)
	}
	rows := make(map[string]int64, len(reportedTables))
	for _, t := range reportedTables {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return st.Current, nil, fmt.Errorf("count %s: %w", t, err)
		}
		rows[t] = n
	}
	// Sealed metric points (migration 00170) count as metrics: the backup holds them all the same.
	var sealed int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM metric_blocks`).Scan(&sealed); err == nil {
		rows["metrics"] += sealed
	}
	return st.Current, rows, nil
}

// syncDir makes a rename in dir durable; tests replace it to make it fail.
var syncDir = durable.SyncDir

// restoreCmd puts a backup in place of the local SQLite database.
type restoreCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const restoreUsage = `Puts the backup FILE (from 'lodestone backup' or GET /admin/backup) in place of the local SQLite database
(--db or --data-dir, as serve uses them). Stop the server first; restore refuses while another process has the
database open. The current database, if any, is kept beside it as <db>.before-restore-<time>. The backup is
checked first, and migrated to this build's schema if it is older. Then start the server again.

To restore into PostgreSQL instead: lodestone copy --from FILE --to postgres://… (an empty database).

Examples:
  lodestone restore /backups/nightly.db --data-dir /srv/lodestone
`

func (c *restoreCmd) spec() cmdSpec {
	return cmdSpec{use: "restore FILE", short: "put a backup in place of the local database (with the server stopped)",
		long: restoreUsage, args: usageArgs(exactArgs("one FILE")), setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			asJSON := fs.Bool("json", false, "print a JSON summary instead of text")
			return func(ctx context.Context, args []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.restore(ctx, cfg, args[0], *asJSON)
			}
		}}
}

func (c *restoreCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

func (c *restoreCmd) restore(ctx context.Context, cfg Config, file string, asJSON bool) error {
	spec, err := parseDB(cfg.DB)
	if err != nil {
		return err
	}
	if spec.dialect == schema.Postgres {
		return fmt.Errorf("restore: --db is PostgreSQL; copy the backup into an empty database with "+
			"'lodestone copy --from %s --to %s'", file, spec)
	}
	target := spec.target
	ver, rows, err := inspectBackup(ctx, file)
	if err != nil {
		return fmt.Errorf("restore: %s is not a usable backup: %w", file, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(target); err == nil {
		if busy, err := inUse(ctx, target); err != nil {
			return fmt.Errorf("restore: check %s: %w", target, err)
		} else if busy {
			return fmt.Errorf("restore: %s is open in another process (a running server?); stop it first", target)
		}
	}

	// Copy next to the target, make it durable, then swap: a crash leaves either database whole.
	tmp := target + ".restore-" + strconv.Itoa(os.Getpid())
	if err := copyFile(file, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	var kept string
	if _, err := os.Stat(target); err == nil {
		kept = target + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(target+suffix, kept+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				os.Remove(tmp)
				return fmt.Errorf("restore: keep the current database: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("restore: %s is in place but may not survive a power loss (previous database kept as "+
			"%q): %w", target, kept, err)
	}
	// Opening migrates an older backup to this build's schema, so the server starts on it at once.
	db, err := sqlite.Open(ctx, target, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("restore: open the restored database: %w", err)
	}
	st, err := db.MigrationStatus(ctx)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	out := map[string]any{"file": file, "database": target, "backup_schema_version": ver,
		"schema_version": st.Current, "rows": rows, "previous": kept}
	if asJSON {
		return jsonOut(c.stdout, out)
	}
	fmt.Fprintf(c.stdout, "restored %s into %s: %d devices, %d faults, %d metrics, %d reboots (schema %d)\n",
		file, target, rows["devices"], rows["faults"], rows["metrics"], rows["reboots"], st.Current)
	if kept != "" {
		fmt.Fprintf(c.stdout, "the previous database is kept as %s\n", kept)
	}
	return nil
}

// inUse reports whether another connection has the SQLite database at path open. In exclusive locking mode a
// read of a WAL database needs the file to itself, so it is refused while any other connection (a server, a
// report) holds it.
func inUse(ctx context.Context, path string) (bool, error) {
	db, err := sql.Open(sqlite.DriverName, sqlite.URI(path, nil, "busy_timeout(0)", "locking_mode(EXCLUSIVE)"))
	if err != nil {
		return false, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
	if err == nil {
		return false, nil
	}
	if msg := err.Error(); strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
		return true, nil
	}
	return false, err
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// backupService is what GET /admin/backup streams: SQLite snapshots itself (VACUUM INTO); PostgreSQL is read
// in one REPEATABLE READ transaction into a SQLite file built under dir, so both give the same kind of backup.
func (s *openedStore) backupService(dir string) lodestone.BackupService {
	if s.pg != nil {
		return &transfer.PostgresBackup{Pool: s.pg.Pool(), Dir: dir}
	}
	b, _ := s.Store.(lodestone.BackupService)
	return b
}

// reporter counts records per device for GET /report/devices; both backends have it.
func (s *openedStore) reporter() lodestone.DeviceReporter {
	r, _ := s.Store.(lodestone.DeviceReporter)
	return r
}
