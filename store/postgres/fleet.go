package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

var _ lodestone.DeviceRegistry = (*DB)(nil)

// inTx runs fn in one transaction; coded errors pass through unwrapped. A transaction that PostgreSQL aborted
// for a deadlock or a serialization failure is run again, up to maxAttempts times in all: fn must only set what
// it returns, never add to it.
func (db *DB) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err = pgx.BeginFunc(ctx, db.pool, fn); !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil && lodestone.ErrorCode(err) == lodestone.EINTERNAL {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	return err
}

// setTags replaces the split tags of a device when tags is set.
func setTags(ctx context.Context, tx pgx.Tx, dev int64, tags *string) error {
	if tags == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM device_tags WHERE device_id = $1`, dev); err != nil {
		return fmt.Errorf("clear tags: %w", err)
	}
	if t := lodestone.SplitTags(*tags); len(t) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO device_tags (device_id, tag) SELECT $1, unnest($2::text[])`, dev,
			t); err != nil {
			return fmt.Errorf("insert tags: %w", err)
		}
	}
	return nil
}

func keyConflict(key uint32, holder string) error {
	return lodestone.Errorf(lodestone.ECONFLICT, "device key %08X already belongs to device %q", key, holder)
}

// RegisterDevices implements lodestone.DeviceRegistry. Each registration runs under a savepoint, so one that
// fails (a key taken concurrently, say) leaves the others in the transaction.
func (db *DB) RegisterDevices(ctx context.Context, regs []lodestone.DeviceRegistration) ([]lodestone.RegisterResult,
	error) {
	out := make([]lodestone.RegisterResult, len(regs))
	err := db.inTx(ctx, "register devices", func(tx pgx.Tx) error {
		target := ""
		if len(regs) == 1 {
			target = auditsql.RegisteredID(regs[0])
		}
		a, err := auditsql.Begin(ctx, pgTx{tx}, schema.Postgres, "device.register", lodestone.AuditDevice, target)
		if err != nil {
			return err
		}
		for i, r := range regs {
			var d *lodestone.Device
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				var err error
				d, err = register(ctx, sp, r)
				return err
			})
			if isUnique(err) {
				err = lodestone.Errorf(lodestone.ECONFLICT, "device key %08X is already taken", r.Key)
			}
			if lodestone.ErrorCode(err) == lodestone.EINTERNAL {
				return err
			}
			out[i] = lodestone.RegisterResult{Device: d, Err: err}
		}
		if len(regs) != 1 {
			a.SetAfter(auditsql.RegisteredAfter(out))
		}
		return a.Done(ctx, pgTx{tx}, "")
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func register(ctx context.Context, tx pgx.Tx, r lodestone.DeviceRegistration) (*lodestone.Device, error) {
	id := r.DeviceID
	if id == "" {
		id = lodestone.DeviceKeyID(r.Key)
	}
	var holder string
	err := tx.QueryRow(ctx, `SELECT device_id FROM devices WHERE device_key = $1`, int64(r.Key)).Scan(&holder)
	if err == nil && holder != id {
		return nil, keyConflict(r.Key, holder)
	} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("find key holder: %w", err)
	}
	at := ms(r.At)
	var dev int64
	err = tx.QueryRow(ctx, `INSERT INTO devices AS d (device_id, status, first_seen, last_seen, device_key, name,
			tags, provisioned_by, provisioned_at)
		VALUES ($1, 'provisioned', $2, $2, $3, $4, $5, $6, $2)
		ON CONFLICT (device_id) DO UPDATE SET
			device_key = excluded.device_key,
			name = coalesce(excluded.name, d.name),
			tags = coalesce(excluded.tags, d.tags),
			provisioned_by = coalesce(excluded.provisioned_by, d.provisioned_by),
			provisioned_at = excluded.provisioned_at,
			status = CASE WHEN d.status = 'unknown' THEN 'provisioned' ELSE d.status END
		RETURNING id`, id, at, int64(r.Key), r.Name, r.Tags, r.ProvisionedBy).Scan(&dev)
	if err != nil {
		return nil, fmt.Errorf("register device %q: %w", id, err)
	}
	if err := setTags(ctx, tx, dev, r.Tags); err != nil {
		return nil, err
	}
	d, err := scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, dev))
	if err != nil {
		return nil, fmt.Errorf("read registered device: %w", err)
	}
	return d, nil
}

// UpdateDevice implements lodestone.DeviceRegistry.
func (db *DB) UpdateDevice(ctx context.Context, deviceID string, u lodestone.DeviceUpdate) (*lodestone.Device, error) {
	var d *lodestone.Device
	err := db.audited(ctx, "update device", "device.update", lodestone.AuditDevice, deviceID, func(tx pgx.Tx) (string, error) {
		var dev int64
		err := tx.QueryRow(ctx, `UPDATE devices SET name = coalesce($1, name), tags = coalesce($2, tags)
			WHERE device_id = $3 RETURNING id`, u.Name, u.Tags, deviceID).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
		} else if err != nil {
			return "", err
		}
		if err := setTags(ctx, tx, dev, u.Tags); err != nil {
			return "", err
		}
		d, err = scanDevice(tx.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, dev))
		return "", err
	})
	return d, err
}

// DeleteDevice implements lodestone.DeviceRegistry. metrics and heartbeats have no foreign keys (see
// 00001_init.sql), so their rows are deleted here; the rest follow the device by ON DELETE CASCADE. The OTA target
// and device keys name the device by device_id.
func (db *DB) DeleteDevice(ctx context.Context, deviceID string) error {
	return db.audited(ctx, "delete device", "device.delete", lodestone.AuditDevice, deviceID, func(tx pgx.Tx) (string, error) {
		var dev int64
		err := tx.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1`, deviceID).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
		} else if err != nil {
			return "", err
		}
		// The faults first, in id order, then the device: symbolication locks faults in id order, each followed
		// by (through its foreign key) its device. Taking them the other way round (the cascade would) deadlocks
		// with it.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM faults WHERE device_id = $1 ORDER BY id FOR UPDATE`,
			dev); err != nil {
			return "", fmt.Errorf("lock faults: %w", err)
		}
		if tag, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, dev); err != nil {
			return "", err
		} else if tag.RowsAffected() == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
		}
		for _, q := range []string{`DELETE FROM metrics WHERE device_id = $1`, `DELETE FROM metric_blocks WHERE device_id = $1`,
			`DELETE FROM heartbeats WHERE device_id = $1`} {
			if _, err := tx.Exec(ctx, q, dev); err != nil {
				return "", fmt.Errorf("%s: %w", q, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE kind = $1 AND device_id = $2`,
			string(lodestone.TokenDevice), deviceID); err != nil {
			return "", fmt.Errorf("delete device keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM ota_targets WHERE device_id = $1`, deviceID); err != nil {
			return "", fmt.Errorf("delete OTA target: %w", err)
		}
		for _, table := range []string{"ddi_actions", "device_attributes"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE device_id = $1`, deviceID); err != nil {
				return "", fmt.Errorf("delete %s: %w", table, err)
			}
		}
		return "", nil
	})
}

// ImportDevice implements lodestone.DeviceRegistry.
func (db *DB) ImportDevice(ctx context.Context, d *lodestone.Device) error {
	var key, provAt *int64
	if d.DeviceKey != nil {
		k := int64(*d.DeviceKey)
		key = &k
	}
	if d.ProvisionedAt != nil {
		v := ms(*d.ProvisionedAt)
		provAt = &v
	}
	status := d.Status
	if status == "" {
		status = lodestone.StatusUnknown
	}
	return db.inTx(ctx, "import device", func(tx pgx.Tx) error {
		if key != nil {
			var holder string
			err := tx.QueryRow(ctx, `SELECT device_id FROM devices WHERE device_key = $1`, *key).Scan(&holder)
			if err == nil && holder != d.DeviceID {
				return keyConflict(*d.DeviceKey, holder)
			} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		var tags *string
		err := tx.QueryRow(ctx, `INSERT INTO devices AS d (device_id, firmware_version, build_id, status,
				first_seen, last_seen, device_key, name, tags, provisioned_by, provisioned_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (device_id) DO UPDATE SET
				firmware_version = CASE WHEN excluded.last_seen >= d.last_seen THEN excluded.firmware_version
					ELSE d.firmware_version END,
				build_id = CASE WHEN excluded.last_seen >= d.last_seen THEN excluded.build_id ELSE d.build_id END,
				status = CASE WHEN excluded.last_seen >= d.last_seen THEN excluded.status ELSE d.status END,
				first_seen = least(d.first_seen, excluded.first_seen),
				last_seen = greatest(d.last_seen, excluded.last_seen),
				device_key = coalesce(d.device_key, excluded.device_key),
				name = coalesce(d.name, excluded.name),
				tags = coalesce(d.tags, excluded.tags),
				provisioned_by = coalesce(d.provisioned_by, excluded.provisioned_by),
				provisioned_at = coalesce(d.provisioned_at, excluded.provisioned_at)
			RETURNING id, tags`, d.DeviceID, d.FirmwareVersion, int64(d.BuildID), string(status), ms(d.FirstSeen),
			ms(d.LastSeen), key, d.Name, d.Tags, d.ProvisionedBy, provAt).Scan(&d.ID, &tags)
		if isUnique(err) {
			return lodestone.Errorf(lodestone.ECONFLICT, "device key %08X is already taken", *d.DeviceKey)
		} else if err != nil {
			return fmt.Errorf("upsert %q: %w", d.DeviceID, err)
		}
		return setTags(ctx, tx, d.ID, tags)
	})
}
