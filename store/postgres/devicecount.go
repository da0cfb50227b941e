package postgres

import (
	"context"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

var (
	_ lodestone.DeviceCounter   = (*DB)(nil)
	_ lodestone.GroupMembership = (*DB)(nil)
)

// countQueries are CountDevicesBy's queries, by what they count by.
var countQueries = map[string]string{
	lodestone.CountByFirmware: `SELECT firmware_version, 0, count(*)::bigint, SUM(CASE WHEN status = 'online' THEN 1 ELSE 0 END)::bigint
		FROM devices GROUP BY firmware_version ORDER BY 3 DESC, 1 LIMIT $1`,
	lodestone.CountByStatus: `SELECT status, 0, count(*)::bigint, SUM(CASE WHEN status = 'online' THEN 1 ELSE 0 END)::bigint
		FROM devices GROUP BY status ORDER BY 3 DESC, 1 LIMIT $1`,
	lodestone.CountByTag: `SELECT t.tag, 0, count(*)::bigint, SUM(CASE WHEN d.status = 'online' THEN 1 ELSE 0 END)::bigint
		FROM device_tags t JOIN devices d ON d.id = t.device_id GROUP BY t.tag ORDER BY 3 DESC, 1 LIMIT $1`,
	lodestone.CountByGroup: `SELECT g.name, g.id::bigint, count(d.id)::bigint, SUM(CASE WHEN d.status = 'online' THEN 1 ELSE 0 END)::bigint
		FROM device_groups g LEFT JOIN device_group_members m ON m.group_id = g.id
		LEFT JOIN devices d ON d.id = m.device_id GROUP BY g.id, g.name ORDER BY 3 DESC, 1 LIMIT $1`,
}

// CountDevicesBy implements lodestone.DeviceCounter.
func (db *DB) CountDevicesBy(ctx context.Context, by string, limit int) ([]lodestone.DeviceCount, error) {
	q, ok := countQueries[by]
	if !ok {
		return nil, lodestone.Errorf(lodestone.EINVALID, "cannot count devices by %q", by)
	}
	rows, err := db.pool.Query(ctx, q, lodestone.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: count devices by %s: %w", by, err)
	}
	defer rows.Close()
	out := []lodestone.DeviceCount{}
	for rows.Next() {
		var c lodestone.DeviceCount
		var online *int64
		if err := rows.Scan(&c.Value, &c.GroupID, &c.Devices, &online); err != nil {
			return nil, fmt.Errorf("postgres: count devices by %s: %w", by, err)
		}
		if online != nil {
			c.Online = *online
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count devices by %s: %w", by, err)
	}
	return out, nil
}

// FindDeviceGroups implements lodestone.GroupMembership.
func (db *DB) FindDeviceGroups(ctx context.Context, deviceID string) ([]*lodestone.Group, error) {
	rows, err := db.pool.Query(ctx, `SELECT g.id, g.name, g.description, g.created_at FROM devices d
		JOIN device_group_members m ON m.device_id = d.id JOIN device_groups g ON g.id = m.group_id
		WHERE d.device_id = $1 ORDER BY g.name`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("postgres: groups of device %q: %w", deviceID, err)
	}
	defer rows.Close()
	out := []*lodestone.Group{}
	for rows.Next() {
		var g lodestone.Group
		var created int64
		if err := rows.Scan(&g.ID, &g.Name, &g.Description, &created); err != nil {
			return nil, fmt.Errorf("postgres: groups of device %q: %w", deviceID, err)
		}
		g.CreatedAt = fromMS(created)
		out = append(out, &g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: groups of device %q: %w", deviceID, err)
	}
	return out, nil
}
