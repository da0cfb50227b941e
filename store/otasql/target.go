package otasql

import (
	"context"
	"database/sql"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

const targetColumns = `id, device_id, target_version, target_build_id, firmware_url, firmware_id, from_version,
	campaign_id, created_at`

func scanTarget(s scanner) (*lodestone.OTATarget, error) {
	var t lodestone.OTATarget
	var build, created int64
	var url, from sql.NullString
	var fw, camp sql.NullInt64
	if err := s.Scan(&t.ID, &t.DeviceID, &t.TargetVersion, &build, &url, &fw, &from, &camp, &created); err != nil {
		return nil, err
	}
	t.TargetBuildID, t.CreatedAt = uint64(build), fromMS(created)
	t.FirmwareURL, t.FromVersion = nullString(url), nullString(from)
	t.FirmwareID, t.CampaignID = nullInt(fw), nullInt(camp)
	return &t, nil
}

// SetTarget implements lodestone.OTATargetService.
func (s *Store) SetTarget(ctx context.Context, t *lodestone.OTATarget) error {
	return s.tx(ctx, "set target", func(tx *sql.Tx) error { return s.setTarget(ctx, tx, t) })
}

func (s *Store) setTarget(ctx context.Context, tx *sql.Tx, t *lodestone.OTATarget) error {
	if t.FirmwareID != nil {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM firmware_artifacts WHERE id = ?`),
			*t.FirmwareID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return lodestone.Errorf(lodestone.ENOTFOUND, "firmware artifact not found")
		}
	}
	return tx.QueryRowContext(ctx, s.q(`INSERT INTO ota_targets (device_id, target_version, target_build_id,
		firmware_url, firmware_id, from_version, campaign_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET target_version = excluded.target_version,
		target_build_id = excluded.target_build_id,
		firmware_url = COALESCE(excluded.firmware_url, ota_targets.firmware_url),
		firmware_id = excluded.firmware_id, from_version = excluded.from_version,
		campaign_id = excluded.campaign_id, created_at = excluded.created_at
		RETURNING id, firmware_url`), t.DeviceID, t.TargetVersion, int64(t.TargetBuildID), ptr(t.FirmwareURL),
		ptr(t.FirmwareID), ptr(t.FromVersion), ptr(t.CampaignID), ms(t.CreatedAt)).Scan(&t.ID, nullStringDest{&t.FirmwareURL})
}

// nullStringDest scans a nullable text column into a *string field.
type nullStringDest struct{ p **string }

func (d nullStringDest) Scan(v any) error {
	var ns sql.NullString
	if err := ns.Scan(v); err != nil {
		return err
	}
	*d.p = nullString(ns)
	return nil
}

// FindTarget implements lodestone.OTATargetService.
func (s *Store) FindTarget(ctx context.Context, deviceID string) (*lodestone.OTATarget, error) {
	t, err := scanTarget(s.r.QueryRowContext(ctx, s.q(`SELECT `+targetColumns+
		` FROM ota_targets WHERE device_id = ?`), deviceID))
	if err != nil {
		return nil, s.wrap(notFound(err, "no OTA target for this device"), "find target")
	}
	return t, nil
}

// FindTargetsOf implements lodestone.OTATargetService.
func (s *Store) FindTargetsOf(ctx context.Context, deviceIDs []string) (map[string]*lodestone.OTATarget, error) {
	out := make(map[string]*lodestone.OTATarget, len(deviceIDs))
	if none, err := s.noTargets(ctx); err != nil || none {
		return out, err
	}
	for len(deviceIDs) > 0 {
		n := min(len(deviceIDs), 500) // well under SQLite's parameter limit
		args := make([]any, n)
		for i, id := range deviceIDs[:n] {
			args[i] = id
		}
		deviceIDs = deviceIDs[n:]
		rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+targetColumns+` FROM ota_targets WHERE device_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", n), ",")+`)`), args...)
		found, err := collect(rows, err, scanTarget)
		if err != nil {
			return nil, s.wrap(err, "find targets of devices")
		}
		for _, t := range found {
			out[t.DeviceID] = t
		}
	}
	return out, nil
}

// FindTargets implements lodestone.OTATargetService.
func (s *Store) FindTargets(ctx context.Context) ([]*lodestone.OTATarget, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+targetColumns+` FROM ota_targets ORDER BY created_at DESC, id DESC`)
	out, err := collect(rows, err, scanTarget)
	return out, s.wrap(err, "list targets")
}

// DeleteTarget implements lodestone.OTATargetService.
func (s *Store) DeleteTarget(ctx context.Context, deviceID string) error {
	return s.tx(ctx, "delete target", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM ota_targets WHERE device_id = ?`), deviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return lodestone.Errorf(lodestone.ENOTFOUND, "no OTA target for this device")
		}
		return nil
	})
}
