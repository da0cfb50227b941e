package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

// placeholderSQL finds the device a registration by key alone created, if it has never posted anything itself.
const placeholderSQL = `SELECT id FROM devices d WHERE device_key = ?1 AND device_id = ?2 AND id <> ?3
	AND firmware_version = '' AND build_id = 0
	AND NOT EXISTS (SELECT 1 FROM heartbeats WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM metrics WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM metric_blocks WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM faults WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM reboots WHERE device_id = d.id)`

// LinkDeviceKey implements lodestone.DeviceRegistry.
func (db *DB) LinkDeviceKey(ctx context.Context, deviceID string, key uint32) (bool, error) {
	linked := false
	err := db.inTx(ctx, "link device key", func(tx *sql.Tx) error {
		var dev int64
		var held sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT id, device_key FROM devices WHERE device_id = ?`, deviceID).
			Scan(&dev, &held)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && held.Valid) {
			return nil // unknown, or it has a key already: a device never loses or swaps its key here
		}
		if err != nil {
			return err
		}
		placeholder := lodestone.DeviceKeyID(key)
		var p int64
		err = tx.QueryRowContext(ctx, placeholderSQL, int64(key), placeholder, dev).Scan(&p)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		steps := []struct {
			what, sql string
			args      []any
		}{
			{"take the key", `UPDATE devices SET device_key = NULL WHERE id = ?1`, []any{p}},
			{"move tags", `UPDATE device_tags SET device_id = ?1 WHERE device_id = ?2
				AND (SELECT tags FROM devices WHERE id = ?1) IS NULL`, []any{dev, p}},
			{"move the registration", `UPDATE devices SET device_key = ?1,
				name = coalesce(name, (SELECT name FROM devices WHERE id = ?3)),
				tags = coalesce(tags, (SELECT tags FROM devices WHERE id = ?3)),
				provisioned_by = coalesce(provisioned_by, (SELECT provisioned_by FROM devices WHERE id = ?3)),
				provisioned_at = coalesce(provisioned_at, (SELECT provisioned_at FROM devices WHERE id = ?3))
				WHERE id = ?2`, []any{int64(key), dev, p}},
			{"move groups", `UPDATE OR IGNORE device_group_members SET device_id = ?1 WHERE device_id = ?2`,
				[]any{dev, p}},
			{"move device keys", `UPDATE tokens SET device_id = ?1 WHERE kind = ?2 AND device_id = ?3`,
				[]any{deviceID, string(lodestone.TokenDevice), placeholder}},
			{"move the OTA target", `UPDATE OR IGNORE ota_targets SET device_id = ?1 WHERE device_id = ?2`,
				[]any{deviceID, placeholder}},
			{"drop the OTA target", `DELETE FROM ota_targets WHERE device_id = ?1`, []any{placeholder}},
			{"drop DDI actions", `DELETE FROM ddi_actions WHERE device_id = ?1`, []any{placeholder}},
			{"drop attributes", `DELETE FROM device_attributes WHERE device_id = ?1`, []any{placeholder}},
			{"delete the placeholder", `DELETE FROM devices WHERE id = ?1`, []any{p}},
		}
		for _, s := range steps {
			if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		linked = true
		return nil
	})
	return linked, err
}
