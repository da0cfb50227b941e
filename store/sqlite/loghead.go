package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.LogHead = (*DB)(nil)

// LastLogID implements lodestone.LogHead: max(id) of a rowid table is one step to the end of its b-tree.
func (db *DB) LastLogID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := db.r.QueryRowContext(ctx, `SELECT max(id) FROM logs`).Scan(&id); err != nil {
		return 0, fmt.Errorf("sqlite: last log id: %w", err)
	}
	return id.Int64, nil
}
