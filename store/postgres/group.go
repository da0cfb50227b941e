package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.GroupService = (*DB)(nil)

const groupSelect = `SELECT g.id, g.name, g.description, g.created_at,
	(SELECT count(*) FROM device_group_members m WHERE m.group_id = g.id) FROM device_groups g`

func scanDeviceGroup(row pgx.Row) (*lodestone.Group, error) {
	var g lodestone.Group
	var created int64
	if err := row.Scan(&g.ID, &g.Name, &g.Description, &created, &g.DeviceCount); err != nil {
		return nil, err
	}
	g.CreatedAt = fromMS(created)
	return &g, nil
}

func groupNameTaken(name string) error {
	return lodestone.Errorf(lodestone.ECONFLICT, "a group named %q already exists", name)
}

// CreateGroup implements lodestone.GroupService.
func (db *DB) CreateGroup(ctx context.Context, g *lodestone.Group) error {
	return db.audited(ctx, "group create", "group.create", lodestone.AuditGroup, "", func(tx pgx.Tx) (string, error) {
		err := tx.QueryRow(ctx, `INSERT INTO device_groups (name, description, created_at) VALUES ($1, $2, $3)
			RETURNING id`, g.Name, g.Description, ms(g.CreatedAt)).Scan(&g.ID)
		if isUnique(err) {
			return "", groupNameTaken(g.Name)
		} else if err != nil {
			return "", fmt.Errorf("postgres: create group %q: %w", g.Name, err)
		}
		return fmt.Sprint(g.ID), nil
	})
}

// FindGroup implements lodestone.GroupService.
func (db *DB) FindGroup(ctx context.Context, id int64) (*lodestone.Group, error) {
	g, err := scanDeviceGroup(db.pool.QueryRow(ctx, groupSelect+` WHERE g.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.ErrGroupNotFound
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find group %d: %w", id, err)
	}
	return g, nil
}

// FindGroups implements lodestone.GroupService.
func (db *DB) FindGroups(ctx context.Context) ([]*lodestone.Group, error) {
	rows, err := db.pool.Query(ctx, groupSelect+` ORDER BY g.name COLLATE "C", g.id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list groups: %w", err)
	}
	return collect(rows, "group", func(r pgx.Rows) (*lodestone.Group, error) { return scanDeviceGroup(r) })
}

// UpdateGroup implements lodestone.GroupService.
func (db *DB) UpdateGroup(ctx context.Context, id int64, u lodestone.GroupUpdate) (*lodestone.Group, error) {
	var g *lodestone.Group
	err := db.audited(ctx, "update group", "group.update", lodestone.AuditGroup, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `UPDATE device_groups SET name = coalesce($1, name),
			description = coalesce($2, description) WHERE id = $3`, u.Name, u.Description, id)
		if isUnique(err) {
			return "", groupNameTaken(*u.Name)
		} else if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.ErrGroupNotFound
		}
		g, err = scanDeviceGroup(tx.QueryRow(ctx, groupSelect+` WHERE g.id = $1`, id))
		return "", err
	})
	return g, err
}

// DeleteGroup implements lodestone.GroupService.
func (db *DB) DeleteGroup(ctx context.Context, id int64) error {
	return db.audited(ctx, "delete group", "group.delete", lodestone.AuditGroup, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		// The lock keeps a campaign from being created for the group while it goes.
		tag, err := tx.Exec(ctx, `SELECT 1 FROM device_groups WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.ErrGroupNotFound
		}
		var camp int64
		err = tx.QueryRow(ctx, `SELECT id FROM ota_campaigns WHERE target_group_id = $1
			AND status IN ('created', 'active', 'paused', 'halted') ORDER BY id LIMIT 1`, id).Scan(&camp)
		if err == nil {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "group is the target of campaign %d, which has not ended", camp)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
		_, err = tx.Exec(ctx, `DELETE FROM device_groups WHERE id = $1`, id)
		return "", err
	})
}

// AddGroupDevice implements lodestone.GroupService.
func (db *DB) AddGroupDevice(ctx context.Context, groupID int64, deviceID string, at time.Time) error {
	return db.audited(ctx, "group add_device", "group.add_device", lodestone.AuditGroupMember, fmt.Sprint(groupID, "/", deviceID), func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO device_group_members (group_id, device_id, added_at)
			SELECT g.id, d.id, $1 FROM device_groups g, devices d WHERE g.id = $2 AND d.device_id = $3`,
			ms(at), groupID, deviceID)
		if isUnique(err) {
			return "", lodestone.ErrAlreadyInGroup
		} else if isForeignKey(err) { // the device or the group was deleted meanwhile
			return "", lodestone.ErrGroupOrDevice
		} else if err != nil {
			return "", fmt.Errorf("postgres: add device %q to group %d: %w", deviceID, groupID, err)
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.ErrGroupOrDevice
		}
		return "", nil
	})
}

// RemoveGroupDevice implements lodestone.GroupService.
func (db *DB) RemoveGroupDevice(ctx context.Context, groupID int64, deviceID string) error {
	return db.audited(ctx, "group remove_device", "group.remove_device", lodestone.AuditGroupMember, fmt.Sprint(groupID, "/", deviceID), func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM device_group_members WHERE group_id = $1
			AND device_id = (SELECT id FROM devices WHERE device_id = $2)`, groupID, deviceID)
		if err != nil {
			return "", fmt.Errorf("postgres: remove device %q from group %d: %w", deviceID, groupID, err)
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.ErrMembershipNotFound
		}
		return "", nil
	})
}
