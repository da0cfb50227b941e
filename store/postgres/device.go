package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

const deviceColumns = `id, device_id, firmware_version, build_id, status, first_seen, last_seen, device_key, name,
	tags, provisioned_by, provisioned_at`

func scanDevice(row pgx.Row) (*lodestone.Device, error) {
	var d lodestone.Device
	var build, first, last int64
	var status string
	var key, provAt *int64
	if err := row.Scan(&d.ID, &d.DeviceID, &d.FirmwareVersion, &build, &status, &first, &last, &key, &d.Name,
		&d.Tags, &d.ProvisionedBy, &provAt); err != nil {
		return nil, err
	}
	d.BuildID = uint64(build)
	d.Status = lodestone.DeviceStatus(status)
	d.FirstSeen, d.LastSeen = fromMS(first), fromMS(last)
	if key != nil {
		k := uint32(*key)
		d.DeviceKey = &k
	}
	if provAt != nil {
		t := fromMS(*provAt)
		d.ProvisionedAt = &t
	}
	return &d, nil
}

// FindDeviceByID implements lodestone.DeviceService.
func (db *DB) FindDeviceByID(ctx context.Context, id string) (*lodestone.Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE device_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find device %q: %w", id, err)
	}
	return d, nil
}

// FindDeviceByKey implements lodestone.DeviceService.
func (db *DB) FindDeviceByKey(ctx context.Context, key uint32) (*lodestone.Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE device_key = $1`,
		int64(key)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find device by key %08X: %w", key, err)
	}
	return d, nil
}

// FindDevices implements lodestone.DeviceService.
func (db *DB) FindDevices(ctx context.Context, f lodestone.DeviceFilter) ([]*lodestone.Device, error) {
	q, a, err := deviceListQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list devices: %w", err)
	}
	return collect(rows, "device", func(r pgx.Rows) (*lodestone.Device, error) { return scanDevice(r) })
}

// deviceListQuery is the statement of FindDevices.
func deviceListQuery(f lodestone.DeviceFilter) (string, args, error) {
	order, err := deviceOrder(f)
	if err != nil {
		return "", nil, err
	}
	var a args
	var conds []string
	if f.Status != "" {
		conds = append(conds, "status = "+a.add(string(f.Status)))
	}
	if f.GroupID != 0 {
		conds = append(conds, `EXISTS (SELECT 1 FROM device_group_members m WHERE m.device_id = devices.id
			AND m.group_id = `+a.add(f.GroupID)+`)`)
	}
	if f.Tag != "" {
		conds = append(conds, `EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.tag = `+
			a.add(f.Tag)+`)`)
	}
	if f.FirmwareVersion != "" {
		conds = append(conds, "firmware_version = "+a.add(f.FirmwareVersion))
	}
	if f.Search != "" {
		// lower() under "C" folds ASCII only, as SQLite's does (lodestone.SearchFold).
		p := a.add(lodestone.SearchFold(f.Search))
		conds = append(conds, `(strpos(lower(device_id COLLATE "C"), `+p+`) > 0 OR strpos(lower(name COLLATE "C"), `+
			p+`) > 0)`)
	}
	q := `SELECT ` + deviceColumns + ` FROM devices` + where(conds) +
		` ORDER BY ` + order + ` LIMIT ` + a.add(lodestone.ClampLimit(f.Limit)) +
		` OFFSET ` + a.add(max(f.Offset, 0))
	return q, a, nil
}

// MarkOffline implements lodestone.DeviceService.
func (db *DB) MarkOffline(ctx context.Context, cutoff time.Time) (int, error) {
	ids, err := db.MarkOfflineDevices(ctx, cutoff)
	return len(ids), err
}

// MarkOfflineDevices implements lodestone.OfflineMarker. Only the replica that leads the sweep calls it, and the
// UPDATE is atomic, so each device's change is reported once. A device whose row another transaction holds is
// left for the next sweep: it is being written (most likely coming back online) or edited, and waiting for it
// while holding the rows already marked deadlocks with a writer that locks them in another order.
func (db *DB) MarkOfflineDevices(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := db.pool.Query(ctx, `UPDATE devices d SET status = 'offline'
		FROM (SELECT id FROM devices WHERE status = 'online' AND last_seen < $1 FOR UPDATE SKIP LOCKED) stale
		WHERE d.id = stale.id RETURNING d.device_id`, ms(cutoff))
	if err != nil {
		return nil, fmt.Errorf("postgres: mark devices offline: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: mark devices offline: %w", err)
	}
	return ids, nil
}

// collect scans every row with scan and closes rows; it never returns a nil slice without an error.
func collect[T any](rows pgx.Rows, what string, scan func(pgx.Rows) (*T, error)) ([]*T, error) {
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: scan %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", what, err)
	}
	return out, nil
}

// deviceOrder is the ORDER BY of a device list: the chosen column, nulls last, then the row id the same way. Text
// compares bytewise (COLLATE "C"), as on SQLite, whatever the database's collation.
func deviceOrder(f lodestone.DeviceFilter) (string, error) {
	dir := " DESC"
	if f.Ascending {
		dir = " ASC"
	}
	switch f.Sort {
	case "", lodestone.SortLastSeen:
		return "last_seen" + dir + ", id" + dir, nil
	case lodestone.SortFirstSeen:
		return "first_seen" + dir + ", id" + dir, nil
	case lodestone.SortDeviceID, lodestone.SortFirmware, lodestone.SortStatus:
		return string(f.Sort) + ` COLLATE "C"` + dir + ", id" + dir, nil
	case lodestone.SortName:
		return `name IS NULL, name COLLATE "C"` + dir + ", id" + dir, nil
	case lodestone.SortID:
		return "id" + dir, nil
	}
	return "", lodestone.Errorf(lodestone.EINVALID, "unknown device order %q", f.Sort)
}
