package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

var _ lodestone.DeviceRegistry = (*DB)(nil)

// execer is what the write helpers need of a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in one write transaction.
func (db *DB) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: begin: %w", what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		if lodestone.ErrorCode(err) != lodestone.EINTERNAL {
			return err
		}
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: commit: %w", what, err)
	}
	return nil
}

// setTags replaces the split tags of a device when tags is set.
func setTags(ctx context.Context, tx execer, dev int64, tags *string) error {
	if tags == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM device_tags WHERE device_id = ?`, dev); err != nil {
		return fmt.Errorf("clear tags: %w", err)
	}
	for _, t := range lodestone.SplitTags(*tags) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_tags (device_id, tag) VALUES (?, ?)`, dev, t); err != nil {
			return fmt.Errorf("insert tag: %w", err)
		}
	}
	return nil
}

// RegisterDevices implements lodestone.DeviceRegistry.
func (db *DB) RegisterDevices(ctx context.Context, regs []lodestone.DeviceRegistration) ([]lodestone.RegisterResult,
	error) {
	out := make([]lodestone.RegisterResult, len(regs))
	err := db.inTx(ctx, "register devices", func(tx *sql.Tx) error {
		target := ""
		if len(regs) == 1 {
			target = auditsql.RegisteredID(regs[0])
		}
		a, err := auditsql.Begin(ctx, auditsql.SQL(tx), schema.SQLite, "device.register", lodestone.AuditDevice, target)
		if err != nil {
			return err
		}
		for i, r := range regs {
			d, err := register(ctx, tx, r)
			if lodestone.ErrorCode(err) == lodestone.EINTERNAL {
				return err
			}
			out[i] = lodestone.RegisterResult{Device: d, Err: err}
		}
		if len(regs) != 1 {
			a.SetAfter(auditsql.RegisteredAfter(out))
		}
		return a.Done(ctx, auditsql.SQL(tx), "")
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func register(ctx context.Context, tx *sql.Tx, r lodestone.DeviceRegistration) (*lodestone.Device, error) {
	id := r.DeviceID
	if id == "" {
		id = lodestone.DeviceKeyID(r.Key)
	}
	var holder string
	err := tx.QueryRowContext(ctx, `SELECT device_id FROM devices WHERE device_key = ?`, r.Key).Scan(&holder)
	if err == nil && holder != id {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "device key %08X already belongs to device %q", r.Key, holder)
	} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find key holder: %w", err)
	}
	at := ms(r.At)
	var dev int64
	err = tx.QueryRowContext(ctx, `INSERT INTO devices (device_id, status, first_seen, last_seen, device_key, name,
			tags, provisioned_by, provisioned_at)
		VALUES (?1, 'provisioned', ?2, ?2, ?3, ?4, ?5, ?6, ?2)
		ON CONFLICT (device_id) DO UPDATE SET
			device_key = excluded.device_key,
			name = coalesce(excluded.name, name),
			tags = coalesce(excluded.tags, tags),
			provisioned_by = coalesce(excluded.provisioned_by, provisioned_by),
			provisioned_at = excluded.provisioned_at,
			status = CASE WHEN status = 'unknown' THEN 'provisioned' ELSE status END
		RETURNING id`, id, at, r.Key, r.Name, r.Tags, r.ProvisionedBy).Scan(&dev)
	if err != nil {
		return nil, fmt.Errorf("register device %q: %w", id, err)
	}
	if err := setTags(ctx, tx, dev, r.Tags); err != nil {
		return nil, err
	}
	d, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, dev))
	if err != nil {
		return nil, fmt.Errorf("read registered device: %w", err)
	}
	return d, nil
}

// UpdateDevice implements lodestone.DeviceRegistry.
func (db *DB) UpdateDevice(ctx context.Context, deviceID string, u lodestone.DeviceUpdate) (*lodestone.Device, error) {
	var d *lodestone.Device
	err := db.audited(ctx, "update device", "device.update", lodestone.AuditDevice, deviceID, func(tx *sql.Tx) (string, error) {
		var dev int64
		err := tx.QueryRowContext(ctx, `UPDATE devices SET name = coalesce(?, name), tags = coalesce(?, tags)
			WHERE device_id = ? RETURNING id`, u.Name, u.Tags, deviceID).Scan(&dev)
		if errors.Is(err, sql.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
		} else if err != nil {
			return "", err
		}
		if err := setTags(ctx, tx, dev, u.Tags); err != nil {
			return "", err
		}
		d, err = scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, dev))
		return "", err
	})
	return d, err
}

// DeleteDevice implements lodestone.DeviceRegistry. Telemetry and memberships go by their foreign keys; the OTA
// target and device keys name the device by device_id and are deleted here.
func (db *DB) DeleteDevice(ctx context.Context, deviceID string) error {
	return db.audited(ctx, "delete device", "device.delete", lodestone.AuditDevice, deviceID, func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE device_id = ?`, deviceID)
		if err != nil {
			return "", err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE kind = ? AND device_id = ?`,
			string(lodestone.TokenDevice), deviceID); err != nil {
			return "", fmt.Errorf("delete device keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ota_targets WHERE device_id = ?`, deviceID); err != nil {
			return "", fmt.Errorf("delete OTA target: %w", err)
		}
		for _, table := range []string{"ddi_actions", "device_attributes"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE device_id = ?`, deviceID); err != nil {
				return "", fmt.Errorf("delete %s: %w", table, err)
			}
		}
		return "", nil
	})
}

// ImportDevice implements lodestone.DeviceRegistry.
func (db *DB) ImportDevice(ctx context.Context, d *lodestone.Device) error {
	var key, provAt any
	if d.DeviceKey != nil {
		key = int64(*d.DeviceKey)
	}
	if d.ProvisionedAt != nil {
		provAt = ms(*d.ProvisionedAt)
	}
	status := d.Status
	if status == "" {
		status = lodestone.StatusUnknown
	}
	return db.inTx(ctx, "import device", func(tx *sql.Tx) error {
		if key != nil {
			var holder string
			err := tx.QueryRowContext(ctx, `SELECT device_id FROM devices WHERE device_key = ?`, key).Scan(&holder)
			if err == nil && holder != d.DeviceID {
				return lodestone.Errorf(lodestone.ECONFLICT, "device key %08X already belongs to device %q",
					*d.DeviceKey, holder)
			} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO devices (device_id, firmware_version, build_id, status,
				first_seen, last_seen, device_key, name, tags, provisioned_by, provisioned_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET
				firmware_version = CASE WHEN excluded.last_seen >= last_seen THEN excluded.firmware_version
					ELSE firmware_version END,
				build_id = CASE WHEN excluded.last_seen >= last_seen THEN excluded.build_id ELSE build_id END,
				status = CASE WHEN excluded.last_seen >= last_seen THEN excluded.status ELSE status END,
				first_seen = min(first_seen, excluded.first_seen),
				last_seen = max(last_seen, excluded.last_seen),
				device_key = coalesce(device_key, excluded.device_key),
				name = coalesce(name, excluded.name),
				tags = coalesce(tags, excluded.tags),
				provisioned_by = coalesce(provisioned_by, excluded.provisioned_by),
				provisioned_at = coalesce(provisioned_at, excluded.provisioned_at)
			RETURNING id`, d.DeviceID, d.FirmwareVersion, int64(d.BuildID), string(status), ms(d.FirstSeen),
			ms(d.LastSeen), key, d.Name, d.Tags, d.ProvisionedBy, provAt).Scan(&d.ID)
		if err != nil {
			return fmt.Errorf("upsert %q: %w", d.DeviceID, err)
		}
		var tags *string
		if err := tx.QueryRowContext(ctx, `SELECT tags FROM devices WHERE id = ?`, d.ID).Scan(&tags); err != nil {
			return err
		}
		return setTags(ctx, tx, d.ID, tags)
	})
}
