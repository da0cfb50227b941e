package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

const deviceColumns = `id, device_id, firmware_version, build_id, status, first_seen, last_seen, device_key, name,
	tags, provisioned_by, provisioned_at`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(s scanner) (*lodestone.Device, error) {
	var d lodestone.Device
	var build, first, last int64
	var status string
	var key, provAt sql.NullInt64
	var name, tags, provBy sql.NullString
	if err := s.Scan(&d.ID, &d.DeviceID, &d.FirmwareVersion, &build, &status, &first, &last, &key, &name, &tags,
		&provBy, &provAt); err != nil {
		return nil, err
	}
	d.BuildID = uint64(build)
	d.Status = lodestone.DeviceStatus(status)
	d.FirstSeen, d.LastSeen = fromMS(first), fromMS(last)
	if key.Valid {
		k := uint32(key.Int64)
		d.DeviceKey = &k
	}
	d.Name, d.Tags, d.ProvisionedBy = nullString(name), nullString(tags), nullString(provBy)
	if provAt.Valid {
		t := fromMS(provAt.Int64)
		d.ProvisionedAt = &t
	}
	return &d, nil
}

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// FindDeviceByID implements lodestone.DeviceService.
func (db *DB) FindDeviceByID(ctx context.Context, id string) (*lodestone.Device, error) {
	d, err := scanDevice(db.r.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE device_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find device %q: %w", id, err)
	}
	return d, nil
}

// FindDeviceByKey implements lodestone.DeviceService.
func (db *DB) FindDeviceByKey(ctx context.Context, key uint32) (*lodestone.Device, error) {
	d, err := scanDevice(db.r.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE device_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find device by key %08X: %w", key, err)
	}
	return d, nil
}

// FindDevices implements lodestone.DeviceService.
func (db *DB) FindDevices(ctx context.Context, f lodestone.DeviceFilter) ([]*lodestone.Device, error) {
	q, args, err := deviceListQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list devices: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan device: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list devices: %w", err)
	}
	return out, nil
}

// deviceListQuery is the statement of FindDevices.
func deviceListQuery(f lodestone.DeviceFilter) (string, []any, error) {
	order, err := deviceOrder(f)
	if err != nil {
		return "", nil, err
	}
	var conds []string
	var args []any
	if f.Status != "" {
		conds, args = append(conds, `status = ?`), append(args, string(f.Status))
	}
	if f.GroupID != 0 {
		conds = append(conds, `EXISTS (SELECT 1 FROM device_group_members m WHERE m.device_id = devices.id
			AND m.group_id = ?)`)
		args = append(args, f.GroupID)
	}
	if f.Tag != "" {
		conds = append(conds, `EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.tag = ?)`)
		args = append(args, f.Tag)
	}
	if f.FirmwareVersion != "" {
		conds, args = append(conds, `firmware_version = ?`), append(args, f.FirmwareVersion)
	}
	if f.Search != "" {
		// A substring cannot use an index; the scan stops once a page is found in the order's index.
		// LIKE folds ASCII letters only, as lodestone.SearchFold does; the search's own % and _ are escaped.
		conds = append(conds, `(device_id LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\')`)
		pattern := "%" + likeEscaper.Replace(f.Search) + "%"
		args = append(args, pattern, pattern)
	}
	q := `SELECT ` + deviceColumns + ` FROM devices`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	q += ` ORDER BY ` + order + ` LIMIT ? OFFSET ?`
	return q, append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0)), nil
}

// MarkOffline implements lodestone.DeviceService.
func (db *DB) MarkOffline(ctx context.Context, cutoff time.Time) (int, error) {
	ids, err := db.MarkOfflineDevices(ctx, cutoff)
	return len(ids), err
}

var _ lodestone.OfflineMarker = (*DB)(nil)

// MarkOfflineDevices implements lodestone.OfflineMarker.
func (db *DB) MarkOfflineDevices(ctx context.Context, cutoff time.Time) ([]string, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	rows, err := db.w.QueryContext(ctx,
		`UPDATE devices SET status = 'offline' WHERE status = 'online' AND last_seen < ? RETURNING device_id`,
		ms(cutoff))
	if err != nil {
		return nil, fmt.Errorf("sqlite: mark devices offline: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: mark devices offline: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: mark devices offline: %w", err)
	}
	return ids, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// deviceOrder is the ORDER BY of a device list: the chosen column, nulls last, then the row id the same way.
func deviceOrder(f lodestone.DeviceFilter) (string, error) {
	dir := " DESC"
	if f.Ascending {
		dir = " ASC"
	}
	switch f.Sort {
	case "", lodestone.SortLastSeen:
		return "last_seen" + dir + ", id" + dir, nil
	case lodestone.SortFirstSeen, lodestone.SortDeviceID, lodestone.SortFirmware, lodestone.SortStatus:
		return string(f.Sort) + dir + ", id" + dir, nil
	case lodestone.SortName:
		// Unnamed devices last either way, in the order of the devices_name_asc and devices_name_desc indexes.
		if f.Ascending {
			return "name IS NULL, name ASC, id ASC", nil
		}
		return "name IS NOT NULL DESC, name DESC, id DESC", nil
	case lodestone.SortID:
		return "id" + dir, nil
	}
	return "", lodestone.Errorf(lodestone.EINVALID, "unknown device order %q", f.Sort)
}
