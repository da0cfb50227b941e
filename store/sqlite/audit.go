package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

var _ lodestone.AuditStore = (*DB)(nil)

// audited runs fn in one write transaction that also records the operator's action on the target of kind kind
// (see auditsql.Begin): the change and its entry commit or roll back together. fn returns the target's id when
// it created it, else "".
func (db *DB) audited(ctx context.Context, what, action, kind, target string,
	fn func(tx *sql.Tx) (string, error)) error {
	return db.inTx(ctx, what, func(tx *sql.Tx) error {
		a, err := auditsql.Begin(ctx, auditsql.SQL(tx), schema.SQLite, action, kind, target)
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

// AppendAuditFile appends e to the audit log of the database file at path from a process other than the server
// (a CLI command that read the database with OpenReadOnly). Its write transaction waits for the server's writer,
// so the chain stays one.
func AppendAuditFile(ctx context.Context, path string, e *lodestone.AuditEntry) error {
	w, err := sql.Open(driverName, dsn(path, "FULL", false))
	if err != nil {
		return fmt.Errorf("sqlite: open %s to append an audit entry: %w", path, err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append audit entry to %s: %w", path, err)
	}
	defer tx.Rollback()
	if err := auditsql.Append(ctx, auditsql.SQL(tx), schema.SQLite, e); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append audit entry to %s: %w", path, err)
	}
	return nil
}
