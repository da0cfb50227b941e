package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// placeholderSQL finds the device a registration by key alone created, if it has never posted anything itself.
const placeholderSQL = `SELECT id FROM devices d WHERE device_key = $1 AND device_id = $2 AND id <> $3
	AND firmware_version = '' AND build_id = 0
	AND NOT EXISTS (SELECT 1 FROM heartbeats WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM metrics WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM metric_blocks WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM faults WHERE device_id = d.id)
	AND NOT EXISTS (SELECT 1 FROM reboots WHERE device_id = d.id)
	FOR UPDATE`

// LinkDeviceKey implements lodestone.DeviceRegistry.
func (db *DB) LinkDeviceKey(ctx context.Context, deviceID string, key uint32) (bool, error) {
	linked := false
	err := db.inTx(ctx, "link device key", func(tx pgx.Tx) error {
		var dev int64
		var held *int64
		err := tx.QueryRow(ctx, `SELECT id, device_key FROM devices WHERE device_id = $1 FOR UPDATE`, deviceID).
			Scan(&dev, &held)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && held != nil) {
			return nil // unknown, or it has a key already: a device never loses or swaps its key here
		}
		if err != nil {
			return err
		}
		placeholder := lodestone.DeviceKeyID(key)
		var p int64
		err = tx.QueryRow(ctx, placeholderSQL, int64(key), placeholder, dev).Scan(&p)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		steps := []struct {
			what, sql string
			args      []any
		}{
			{"take the key", `UPDATE devices SET device_key = NULL WHERE id = $1`, []any{p}},
			{"move tags", `UPDATE device_tags SET device_id = $1 WHERE device_id = $2
				AND (SELECT tags FROM devices WHERE id = $1) IS NULL`, []any{dev, p}},
			{"move the registration", `UPDATE devices d SET device_key = $1,
				name = coalesce(d.name, p.name), tags = coalesce(d.tags, p.tags),
				provisioned_by = coalesce(d.provisioned_by, p.provisioned_by),
				provisioned_at = coalesce(d.provisioned_at, p.provisioned_at)
				FROM devices p WHERE d.id = $2 AND p.id = $3`, []any{int64(key), dev, p}},
			{"move groups", `INSERT INTO device_group_members (group_id, device_id, added_at)
				SELECT group_id, $1, added_at FROM device_group_members WHERE device_id = $2
				ON CONFLICT DO NOTHING`, []any{dev, p}},
			{"move device keys", `UPDATE tokens SET device_id = $1 WHERE kind = $2 AND device_id = $3`,
				[]any{deviceID, string(lodestone.TokenDevice), placeholder}},
			{"move the OTA target", `UPDATE ota_targets SET device_id = $1 WHERE device_id = $2
				AND NOT EXISTS (SELECT 1 FROM ota_targets WHERE device_id = $1)`, []any{deviceID, placeholder}},
			{"drop the OTA target", `DELETE FROM ota_targets WHERE device_id = $1`, []any{placeholder}},
			{"drop DDI actions", `DELETE FROM ddi_actions WHERE device_id = $1`, []any{placeholder}},
			{"drop attributes", `DELETE FROM device_attributes WHERE device_id = $1`, []any{placeholder}},
			{"delete the placeholder", `DELETE FROM devices WHERE id = $1`, []any{p}},
		}
		for _, s := range steps {
			if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
				return fmt.Errorf("%s: %w", s.what, err)
			}
		}
		linked = true
		return nil
	})
	return linked, err
}
