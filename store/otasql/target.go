package otasql

import (
	"context"
	"database/sql"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

const targetColumns = `id, device_id, target_version, target_build_id, firmware_url, firmware_id, from_version,
	campaign_id, created_at, origin`

func scanTarget(s scanner) (*lodestone.OTATarget, error) {
	var t lodestone.OTATarget
	var build, created int64
	var url, from sql.NullString
	var fw, camp sql.NullInt64
	if err := s.Scan(&t.ID, &t.DeviceID, &t.TargetVersion, &build, &url, &fw, &from, &camp, &created,
		&t.Origin); err != nil {
		return nil, err
	}
	t.TargetBuildID, t.CreatedAt = uint64(build), fromMS(created)
	t.FirmwareURL, t.FromVersion = nullString(url), nullString(from)
	t.FirmwareID, t.CampaignID = nullInt(fw), nullInt(camp)
	return &t, nil
}

// SetTarget implements lodestone.OTATargetService.
func (s *Store) SetTarget(ctx context.Context, t *lodestone.OTATarget) error {
	return s.audited(ctx, "set target", "ota_target.set", lodestone.AuditOTATarget, t.DeviceID,
		func(tx *sql.Tx) (string, error) { return "", s.setTarget(ctx, tx, t) })
}

func (s *Store) setTarget(ctx context.Context, tx *sql.Tx, t *lodestone.OTATarget) error {
	if t.FirmwareID != nil {
		// Share-locked, so that a concurrent DeleteFirmware (which refuses used artifacts) waits for this target.
		var fwOrigin string
		err := tx.QueryRowContext(ctx, s.q(`SELECT origin FROM firmware_artifacts WHERE id = ?`+s.forShare()),
			*t.FirmwareID).Scan(&fwOrigin)
		if err != nil {
			return notFound(err, "firmware artifact not found")
		}
		if t.Origin == lodestone.OriginFUOTA && fwOrigin != lodestone.OriginFUOTA {
			return lodestone.Errorf(lodestone.EFORBIDDEN, "a FUOTA target may name only a FUOTA upload")
		}
	}
	t.Origin = origin(t.Origin)
	// A FUOTA write replaces only a FUOTA row no campaign holds, decided in the statement itself so that a
	// target another writer inserted since fuotaMayWrite looked is not taken over.
	only := ""
	if t.Origin == lodestone.OriginFUOTA {
		only = ` WHERE ota_targets.origin = 'fuota' AND ota_targets.campaign_id IS NULL`
	}
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO ota_targets (device_id, target_version, target_build_id,
		firmware_url, firmware_id, from_version, campaign_id, created_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET target_version = excluded.target_version,
		target_build_id = excluded.target_build_id,
		firmware_url = COALESCE(excluded.firmware_url, ota_targets.firmware_url),
		firmware_id = excluded.firmware_id, from_version = excluded.from_version,
		campaign_id = excluded.campaign_id, created_at = excluded.created_at, origin = excluded.origin`+only+`
		RETURNING id, firmware_url`), t.DeviceID, t.TargetVersion, int64(t.TargetBuildID), ptr(t.FirmwareURL),
		ptr(t.FirmwareID), ptr(t.FromVersion), ptr(t.CampaignID), ms(t.CreatedAt),
		t.Origin).Scan(&t.ID, nullStringDest{&t.FirmwareURL})
	if err == sql.ErrNoRows {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "the target of device %q was not set through FUOTA; it is "+
			"read-only to the FUOTA login", t.DeviceID)
	}
	return err
}

// SetFUOTATarget implements lodestone.OTATargetService.
func (s *Store) SetFUOTATarget(ctx context.Context, t *lodestone.OTATarget) error {
	return s.audited(ctx, "set FUOTA target", "ota_target.fuota_set", lodestone.AuditOTATarget, t.DeviceID, func(tx *sql.Tx) (string, error) {
		if err := s.fuotaMayWrite(ctx, tx, t.DeviceID, true); err != nil {
			return "", err
		}
		t.Origin, t.CampaignID = lodestone.OriginFUOTA, nil
		return "", s.setTarget(ctx, tx, t)
	})
}

// DeleteFUOTATarget implements lodestone.OTATargetService.
func (s *Store) DeleteFUOTATarget(ctx context.Context, deviceID string) error {
	return s.audited(ctx, "delete FUOTA target", "ota_target.fuota_delete", lodestone.AuditOTATarget, deviceID, func(tx *sql.Tx) (string, error) {
		if err := s.fuotaMayWrite(ctx, tx, deviceID, false); err != nil {
			return "", err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM ota_targets WHERE device_id = ? AND origin = 'fuota'
			AND campaign_id IS NULL`), deviceID)
		if err != nil {
			return "", err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.EFORBIDDEN, "the target of device %q changed hands; it is "+
				"read-only to the FUOTA login", deviceID)
		}
		return "", nil
	})
}

// fuotaDevice holds for an ota_targets.device_id that the FUOTA login may steer: none of lodestone's devices
// (reported or provisioned, or holding a device key) and in no unfinished campaign.
const fuotaDevice = `(NOT EXISTS (SELECT 1 FROM devices WHERE device_id = ota_targets.device_id)
	AND NOT EXISTS (SELECT 1 FROM tokens WHERE device_id = ota_targets.device_id AND revoked_at IS NULL)
	AND NOT EXISTS (SELECT 1 FROM ota_campaign_devices d JOIN ota_campaigns c ON c.id = d.campaign_id
		WHERE d.device_id = ota_targets.device_id AND c.status NOT IN ('completed', 'aborted', 'rolled_back')))`

// fuotaMayWrite refuses the FUOTA login a device's target unless FUOTA set it and no campaign took it over since,
// and the device is none of lodestone's (reported, provisioned, or holding a device key) and in no unfinished
// campaign. The FUOTA login is one pair shared by a fleet: it must not steer anything an operator manages.
func (s *Store) fuotaMayWrite(ctx context.Context, tx *sql.Tx, deviceID string, create bool) error {
	var org string
	var camp sql.NullInt64
	err := tx.QueryRowContext(ctx, s.q(`SELECT origin, campaign_id FROM ota_targets WHERE device_id = ?`+
		s.forUpdate()), deviceID).Scan(&org, &camp)
	switch {
	case err == sql.ErrNoRows && !create:
		return lodestone.Errorf(lodestone.ENOTFOUND, "no OTA target for this device")
	case err == sql.ErrNoRows:
	case err != nil:
		return err
	case org != lodestone.OriginFUOTA || camp.Valid:
		return lodestone.Errorf(lodestone.EFORBIDDEN, "the target of device %q was set through lodestone's OTA "+
			"API or a campaign; it is read-only to the FUOTA login", deviceID)
	}
	var ok bool
	if err := tx.QueryRowContext(ctx, s.q(`SELECT `+strings.ReplaceAll(fuotaDevice, "ota_targets.device_id", "?")),
		deviceID, deviceID, deviceID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "device %q is managed through lodestone's OTA API (it "+
			"reported, was provisioned, has a device key, or is in a campaign); the FUOTA login cannot change its "+
			"target", deviceID)
	}
	return nil
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
	return s.audited(ctx, "delete target", "ota_target.delete", lodestone.AuditOTATarget, deviceID, func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM ota_targets WHERE device_id = ?`), deviceID)
		if err != nil {
			return "", err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "no OTA target for this device")
		}
		return "", nil
	})
}
