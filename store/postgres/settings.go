package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// Setting implements lodestone.Settings.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", lodestone.Errorf(lodestone.ENOTFOUND, "setting %q not found", key)
	} else if err != nil {
		return "", fmt.Errorf("postgres: read setting %q: %w", key, err)
	}
	return v, nil
}

// SetSettingIfAbsent implements lodestone.Settings. Replicas racing to set the same key agree on one value.
func (db *DB) SetSettingIfAbsent(ctx context.Context, key, value string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
		key, value)
	if err != nil {
		return false, fmt.Errorf("postgres: store setting %q: %w", key, err)
	}
	return tag.RowsAffected() == 1, nil
}
