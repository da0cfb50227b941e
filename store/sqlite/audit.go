package sqlite

import (
	"context"
	"database/sql"

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
