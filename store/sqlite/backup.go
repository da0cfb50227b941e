package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.BackupService = (*DB)(nil)

// Backup implements lodestone.BackupService with VACUUM INTO on a read connection: one read transaction, so the
// copy is exactly the committed state when it began, while the writer carries on beside it (WAL). The online
// backup API would restart on every commit made during the copy and might never finish under steady ingest.
//
// The copy goes to a private directory next to the database (same file system, no path from the caller) and is
// removed when the snapshot is closed; anything left by a crash is removed at the next Open.
func (db *DB) Backup(ctx context.Context) (*lodestone.Snapshot, error) {
	dir, err := os.MkdirTemp(filepath.Dir(db.path), backupPrefix(db.path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: backup: make a temporary directory: %w", err)
	}
	fail := func(err error) (*lodestone.Snapshot, error) {
		if rerr := os.RemoveAll(dir); rerr != nil {
			db.log.Warn("sqlite: backup: remove the temporary snapshot", "dir", dir, "err", rerr)
		}
		return nil, err
	}
	out := filepath.Join(dir, "snapshot.db")
	conn, err := db.r.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("sqlite: backup: %w", err))
	}
	defer conn.Close()
	// The read pool is query_only; VACUUM INTO writes only the new file, but SQLite refuses it under query_only.
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		return fail(fmt.Errorf("sqlite: backup: %w", err))
	}
	taken := db.now()
	_, err = conn.ExecContext(ctx, "VACUUM INTO ?", out)
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA query_only = 1"); rerr != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn }) // never back in the pool writable
	}
	if err != nil {
		return fail(fmt.Errorf("sqlite: backup: VACUUM INTO: %w", err))
	}
	f, err := os.Open(out)
	if err != nil {
		return fail(fmt.Errorf("sqlite: backup: %w", err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(fmt.Errorf("sqlite: backup: %w", err))
	}
	return &lodestone.Snapshot{ReadCloser: &tempFile{File: f, dir: dir}, Size: st.Size(), Taken: taken}, nil
}

func backupPrefix(dbPath string) string { return filepath.Base(dbPath) + ".backup-" }

// tempFile removes its directory when closed.
type tempFile struct {
	*os.File
	dir string
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	if rerr := os.RemoveAll(t.dir); err == nil {
		err = rerr
	}
	return err
}

// removeStaleBackups deletes snapshot directories a crashed process left beside the database. A snapshot being
// written by a live server is modified continuously, and one being streamed stays readable after unlinking, so
// only the age of the last write matters.
func removeStaleBackups(dbPath string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(filepath.Dir(dbPath), backupPrefix(dbPath)+"*"))
	for _, d := range dirs {
		last, err := os.Stat(d)
		if err != nil {
			continue
		}
		mod := last.ModTime()
		if st, err := os.Stat(filepath.Join(d, "snapshot.db")); err == nil && st.ModTime().After(mod) {
			mod = st.ModTime()
		}
		if time.Since(mod) > staleBackup {
			if err := os.RemoveAll(d); err != nil {
				log.Warn("sqlite: remove a stale backup snapshot", "dir", d, "err", err)
			}
		}
	}
}

const staleBackup = 10 * time.Minute
