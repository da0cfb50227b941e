package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.GroupService = (*DB)(nil)

const groupSelect = `SELECT g.id, g.name, g.description, g.created_at,
	(SELECT count(*) FROM device_group_members m WHERE m.group_id = g.id) FROM device_groups g`

func scanDeviceGroup(s scanner) (*lodestone.Group, error) {
	var g lodestone.Group
	var desc sql.NullString
	var created int64
	if err := s.Scan(&g.ID, &g.Name, &desc, &created, &g.DeviceCount); err != nil {
		return nil, err
	}
	g.Description, g.CreatedAt = nullString(desc), fromMS(created)
	return &g, nil
}

func groupNameTaken(name string) error {
	return lodestone.Errorf(lodestone.ECONFLICT, "a group named %q already exists", name)
}

// CreateGroup implements lodestone.GroupService.
func (db *DB) CreateGroup(ctx context.Context, g *lodestone.Group) error {
	return db.audited(ctx, "group create", "group.create", lodestone.AuditGroup, "", func(tx *sql.Tx) (string, error) {
		err := tx.QueryRowContext(ctx, `INSERT INTO device_groups (name, description, created_at) VALUES (?, ?, ?)
			RETURNING id`, g.Name, g.Description, ms(g.CreatedAt)).Scan(&g.ID)
		if isUnique(err) {
			return "", groupNameTaken(g.Name)
		} else if err != nil {
			return "", fmt.Errorf("sqlite: create group %q: %w", g.Name, err)
		}
		return fmt.Sprint(g.ID), nil
	})
}

// FindGroup implements lodestone.GroupService.
func (db *DB) FindGroup(ctx context.Context, id int64) (*lodestone.Group, error) {
	return findGroup(ctx, db.r, id)
}

func findGroup(ctx context.Context, q execer, id int64) (*lodestone.Group, error) {
	g, err := scanDeviceGroup(q.QueryRowContext(ctx, groupSelect+` WHERE g.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.ErrGroupNotFound
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find group %d: %w", id, err)
	}
	return g, nil
}

// FindGroups implements lodestone.GroupService.
func (db *DB) FindGroups(ctx context.Context) ([]*lodestone.Group, error) {
	rows, err := db.r.QueryContext(ctx, groupSelect+` ORDER BY g.name, g.id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list groups: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.Group{}
	for rows.Next() {
		g, err := scanDeviceGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan group: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list groups: %w", err)
	}
	return out, nil
}

// UpdateGroup implements lodestone.GroupService.
func (db *DB) UpdateGroup(ctx context.Context, id int64, u lodestone.GroupUpdate) (*lodestone.Group, error) {
	var g *lodestone.Group
	err := db.audited(ctx, "update group", "group.update", lodestone.AuditGroup, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `UPDATE device_groups SET name = coalesce(?, name),
			description = coalesce(?, description) WHERE id = ?`, u.Name, u.Description, id)
		if isUnique(err) {
			return "", groupNameTaken(*u.Name)
		} else if err != nil {
			return "", err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.ErrGroupNotFound
		}
		g, err = findGroup(ctx, tx, id)
		return "", err
	})
	return g, err
}

// DeleteGroup implements lodestone.GroupService.
func (db *DB) DeleteGroup(ctx context.Context, id int64) error {
	return db.audited(ctx, "delete group", "group.delete", lodestone.AuditGroup, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		var camp int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM ota_campaigns WHERE target_group_id = ?
			AND status IN ('created', 'active', 'paused', 'halted') ORDER BY id LIMIT 1`, id).Scan(&camp)
		if err == nil {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "group is the target of campaign %d, which has not ended", camp)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM device_groups WHERE id = ?`, id)
		if err != nil {
			return "", err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.ErrGroupNotFound
		}
		return "", nil
	})
}

// AddGroupDevice implements lodestone.GroupService.
func (db *DB) AddGroupDevice(ctx context.Context, groupID int64, deviceID string, at time.Time) error {
	return db.audited(ctx, "group add_device", "group.add_device", lodestone.AuditGroupMember, fmt.Sprint(groupID, "/", deviceID), func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `INSERT INTO device_group_members (group_id, device_id, added_at)
			SELECT g.id, d.id, ? FROM device_groups g, devices d WHERE g.id = ? AND d.device_id = ?`,
			ms(at), groupID, deviceID)
		if isUnique(err) {
			return "", lodestone.ErrAlreadyInGroup
		} else if err != nil {
			return "", fmt.Errorf("sqlite: add device %q to group %d: %w", deviceID, groupID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.ErrGroupOrDevice
		}
		return "", nil
	})
}

// RemoveGroupDevice implements lodestone.GroupService.
func (db *DB) RemoveGroupDevice(ctx context.Context, groupID int64, deviceID string) error {
	return db.audited(ctx, "group remove_device", "group.remove_device", lodestone.AuditGroupMember, fmt.Sprint(groupID, "/", deviceID), func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM device_group_members WHERE group_id = ?
			AND device_id = (SELECT id FROM devices WHERE device_id = ?)`, groupID, deviceID)
		if err != nil {
			return "", fmt.Errorf("sqlite: remove device %q from group %d: %w", deviceID, groupID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.ErrMembershipNotFound
		}
		return "", nil
	})
}
