package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

// Setting implements lodestone.Settings.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", lodestone.Errorf(lodestone.ENOTFOUND, "setting %q not found", key)
	} else if err != nil {
		return "", fmt.Errorf("sqlite: read setting %q: %w", key, err)
	}
	return v, nil
}

// SetSettingIfAbsent implements lodestone.Settings.
func (db *DB) SetSettingIfAbsent(ctx context.Context, key, value string) (bool, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	res, err := db.w.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
		key, value)
	if err != nil {
		return false, fmt.Errorf("sqlite: store setting %q: %w", key, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
