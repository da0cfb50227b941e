package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

var _ lodestone.AuditStore = (*DB)(nil)

// pgTx lets the audit log write in a pgx transaction.
type pgTx struct{ tx pgx.Tx }

func (t pgTx) QueryRow(ctx context.Context, query string, args ...any) auditsql.Row {
	return t.tx.QueryRow(ctx, query, args...)
}

func (t pgTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

// audited runs fn in one transaction that also records the operator's action on the target of kind kind (see
// auditsql.Begin): the change and its entry commit or roll back together. fn returns the target's id when it
// created it, else "".
func (db *DB) audited(ctx context.Context, what, action, kind, target string,
	fn func(tx pgx.Tx) (string, error)) error {
	return db.inTx(ctx, what, func(tx pgx.Tx) error {
		a, err := auditsql.Begin(ctx, pgTx{tx}, schema.Postgres, action, kind, target)
		if err != nil {
			return err
		}
		id, err := fn(tx)
		if err != nil {
			return err
		}
		return a.Done(ctx, pgTx{tx}, id)
	})
}
