package transfer

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// Snapshot copies every row of src (PostgreSQL at the newest schema) into dst (a SQLite database at the newest
// schema, with no rows): Copy in reverse. It reads in one REPEATABLE READ, read-only transaction, so the copy is
// the committed state at one instant while the replicas keep writing, and writes dst in one transaction.
func Snapshot(ctx context.Context, src *pgxpool.Pool, dst *sql.DB) ([]Count, error) {
	stx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("transfer: open a snapshot of the source: %w", err)
	}
	defer stx.Rollback(context.WithoutCancel(ctx))
	dtx, err := dst.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("transfer: begin destination transaction: %w", err)
	}
	defer dtx.Rollback()
	counts := make([]Count, len(Tables))
	for i, t := range Tables {
		counts[i].Table = t.Name
		if err := stx.QueryRow(ctx, `SELECT count(*) FROM `+t.Name).Scan(&counts[i].Source); err != nil {
			return nil, fmt.Errorf("transfer: count source table %s: %w", t.Name, err)
		}
		if counts[i].Destination, err = snapshotTable(ctx, stx, dtx, t); err != nil {
			return nil, err
		}
		if counts[i].Destination != counts[i].Source {
			return counts, fmt.Errorf("transfer: %s: %d rows in the snapshot, %d copied", t.Name,
				counts[i].Source, counts[i].Destination)
		}
	}
	if err := dtx.Commit(); err != nil {
		return nil, fmt.Errorf("transfer: commit: %w", err)
	}
	return counts, nil
}

func snapshotTable(ctx context.Context, src pgx.Tx, dst *sql.Tx, t Table) (int64, error) {
	cols := strings.Join(t.Cols, ", ")
	ins, err := dst.PrepareContext(ctx, `INSERT INTO `+t.Name+` (`+cols+`) VALUES (?`+
		strings.Repeat(", ?", len(t.Cols)-1)+`)`)
	if err != nil {
		return 0, fmt.Errorf("transfer: prepare %s: %w", t.Name, err)
	}
	defer ins.Close()
	var copied int64
	var after []any
	if derived[t.Name] {
		if _, err := dst.ExecContext(ctx, `DELETE FROM `+t.Name); err != nil {
			return 0, fmt.Errorf("transfer: empty derived table %s: %w", t.Name, err)
		}
	}
	for {
		q, args := t.pageQuery(after, func(n int) string { return fmt.Sprintf("$%d", n) })
		rows, err := src.Query(ctx, q, args...)
		if err != nil {
			return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
		}
		n := 0
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
			}
			if _, err := ins.ExecContext(ctx, vals...); err != nil {
				rows.Close()
				return copied, fmt.Errorf("transfer: write %s: %w", t.Name, err)
			}
			after = t.keyOf(vals)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
		}
		copied += int64(n)
		if n < pageSize {
			return copied, nil
		}
	}
}

// PostgresBackup is lodestone.BackupService for a PostgreSQL instance: the snapshot is a SQLite file built in
// a temporary directory under Dir, so a PostgreSQL fleet gets the same backup file (and restore) as a SQLite one.
type PostgresBackup struct {
	Pool *pgxpool.Pool
	Dir  string
}

var _ lodestone.BackupService = (*PostgresBackup)(nil)

const pgBackupPrefix = "lodestone-pg-backup-"

// Backup implements lodestone.BackupService.
func (b *PostgresBackup) Backup(ctx context.Context) (*lodestone.Snapshot, error) {
	removeStale(b.Dir)
	dir, err := os.MkdirTemp(b.Dir, pgBackupPrefix)
	if err != nil {
		return nil, fmt.Errorf("transfer: backup: %w", err)
	}
	fail := func(err error) (*lodestone.Snapshot, error) {
		if rerr := os.RemoveAll(dir); rerr != nil {
			slog.Warn("transfer: backup: remove the temporary snapshot", "dir", dir, "err", rerr)
		}
		return nil, fmt.Errorf("transfer: backup: %w", err)
	}
	path := filepath.Join(dir, "snapshot.db")
	// Opening creates the file at the newest schema; then rows go in through a plain connection. The file is
	// temporary, so it is written without a journal or fsyncs.
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return fail(err)
	}
	if err := s.Close(); err != nil {
		return fail(err)
	}
	db, err := sql.Open(sqlite.DriverName, sqlite.URI(path, nil, "foreign_keys(0)", "synchronous(OFF)"))
	if err != nil {
		return fail(err)
	}
	db.SetMaxOpenConns(1)
	taken := time.Now()
	_, err = Snapshot(ctx, b.Pool, db)
	if err == nil {
		_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(err)
	}
	return &lodestone.Snapshot{ReadCloser: &tempFile{File: f, dir: dir}, Size: st.Size(), Taken: taken}, nil
}

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

// removeStale deletes snapshot directories a crashed process left behind; one being built is younger than this.
func removeStale(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, pgBackupPrefix+"*"))
	for _, d := range old {
		st, err := os.Stat(filepath.Join(d, "snapshot.db"))
		if err != nil {
			st, err = os.Stat(d)
		}
		if err == nil && time.Since(st.ModTime()) > time.Hour {
			if err := os.RemoveAll(d); err != nil {
				slog.Warn("transfer: remove a stale backup snapshot", "dir", d, "err", err)
			}
		}
	}
}
