package postgres

import (
	"context"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.LogHead = (*DB)(nil)

// LastLogID implements lodestone.LogHead: max(id) reads one end of the primary key index.
func (db *DB) LastLogID(ctx context.Context) (int64, error) {
	var id *int64
	if err := db.pool.QueryRow(ctx, `SELECT max(id) FROM logs`).Scan(&id); err != nil {
		return 0, fmt.Errorf("postgres: last log id: %w", err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}
