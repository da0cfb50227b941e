package otasql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

const campaignColumns = `id, name, firmware_id, target_version, strategy, target_group_id, target_tags,
	rollout_percent, failure_threshold, waves, soak_ms, health_ratio, min_device_hours, offer_timeout_ms,
	install_timeout_ms, status, wave, wave_started_at, started_at, halt_reason, created_at, updated_at`

func scanCampaign(s scanner) (*lodestone.Campaign, error) {
	var c lodestone.Campaign
	var group, waveStart, started sql.NullInt64
	var tags sql.NullString
	var waves string
	var soak, offerTO, installTO, created, updated int64
	if err := s.Scan(&c.ID, &c.Name, &c.FirmwareID, &c.TargetVersion, &c.Strategy, &group, &tags,
		&c.RolloutPercent, &c.FailureThreshold, &waves, &soak, &c.HealthRatio, &c.MinDeviceHours, &offerTO,
		&installTO, &c.Status, &c.Wave, &waveStart, &started, &c.HaltReason, &created, &updated); err != nil {
		return nil, err
	}
	c.TargetGroupID, c.TargetTags = nullInt(group), nullString(tags)
	for _, w := range strings.Split(waves, ",") {
		if n, err := strconv.Atoi(w); err == nil {
			c.Waves = append(c.Waves, n)
		}
	}
	c.SoakTime = time.Duration(soak) * time.Millisecond
	c.OfferTimeout = time.Duration(offerTO) * time.Millisecond
	c.InstallTimeout = time.Duration(installTO) * time.Millisecond
	c.WaveStartedAt, c.StartedAt = nullTime(waveStart), nullTime(started)
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	return &c, nil
}

func joinWaves(w []int) string {
	s := make([]string, len(w))
	for i, v := range w {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// CreateCampaign implements lodestone.CampaignStore.
func (s *Store) CreateCampaign(ctx context.Context, c *lodestone.Campaign, deviceIDs []string) error {
	return s.audited(ctx, "create campaign", "campaign.create", lodestone.AuditCampaign, "", func(tx *sql.Tx) (string, error) {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM firmware_artifacts WHERE id = ?`),
			c.FirmwareID).Scan(&n); err != nil {
			return "", err
		}
		if n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "firmware artifact not found")
		}
		if c.Status == "" {
			c.Status = lodestone.CampaignCreated
		}
		c.Wave = -1
		if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO ota_campaigns (name, firmware_id, target_version,
			strategy, target_group_id, target_tags, rollout_percent, failure_threshold, waves, soak_ms,
			health_ratio, min_device_hours, offer_timeout_ms, install_timeout_ms, status, wave, created_at,
			updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, -1, ?, ?) RETURNING id`),
			c.Name, c.FirmwareID, c.TargetVersion, c.Strategy, ptr(c.TargetGroupID), ptr(c.TargetTags),
			c.RolloutPercent, c.FailureThreshold, joinWaves(c.Waves), c.SoakTime.Milliseconds(), c.HealthRatio,
			c.MinDeviceHours, c.OfferTimeout.Milliseconds(), c.InstallTimeout.Milliseconds(), c.Status,
			ms(c.CreatedAt), ms(c.UpdatedAt)).Scan(&c.ID); err != nil {
			return "", err
		}
		ins := s.q(`INSERT INTO ota_campaign_devices (campaign_id, device_id, status, updated_at)
			VALUES (?, ?, 'pending', ?) ON CONFLICT (campaign_id, device_id) DO NOTHING`)
		stmt, err := tx.PrepareContext(ctx, ins)
		if err != nil {
			return "", err
		}
		defer stmt.Close()
		for _, d := range deviceIDs {
			if _, err := stmt.ExecContext(ctx, c.ID, d, ms(c.CreatedAt)); err != nil {
				return "", err
			}
		}
		return fmt.Sprint(c.ID), nil
	})
}

// FindCampaign implements lodestone.CampaignStore.
func (s *Store) FindCampaign(ctx context.Context, id int64) (*lodestone.Campaign, error) {
	c, err := scanCampaign(s.r.QueryRowContext(ctx, s.q(`SELECT `+campaignColumns+
		` FROM ota_campaigns WHERE id = ?`), id))
	if err != nil {
		return nil, s.wrap(notFound(err, "campaign not found"), "find campaign")
	}
	return c, nil
}

// FindCampaigns implements lodestone.CampaignStore.
func (s *Store) FindCampaigns(ctx context.Context, statuses ...string) ([]*lodestone.Campaign, error) {
	q := `SELECT ` + campaignColumns + ` FROM ota_campaigns`
	args := make([]any, len(statuses))
	if len(statuses) > 0 {
		q += ` WHERE status IN (?` + strings.Repeat(", ?", len(statuses)-1) + `)`
		for i, st := range statuses {
			args[i] = st
		}
	}
	rows, err := s.r.QueryContext(ctx, s.q(q+` ORDER BY created_at DESC, id DESC`), args...)
	out, err := collect(rows, err, scanCampaign)
	return out, s.wrap(err, "list campaigns")
}

const campaignDeviceColumns = `id, campaign_id, device_id, status, wave, reason, offered_at, installed_at,
	updated_at, had_prev, prev_target_version, prev_target_build_id, prev_firmware_url, prev_firmware_id,
	prev_from_version, prev_campaign_id, prev_origin`

func scanCampaignDevice(s scanner) (*lodestone.CampaignDevice, error) {
	var d lodestone.CampaignDevice
	var offered, installed, prevBuild, prevFW, prevCamp sql.NullInt64
	var prevVer, prevURL, prevFrom, prevOrigin sql.NullString
	var updated, hadPrev int64
	if err := s.Scan(&d.ID, &d.CampaignID, &d.DeviceID, &d.Status, &d.Wave, &d.Reason, &offered, &installed,
		&updated, &hadPrev, &prevVer, &prevBuild, &prevURL, &prevFW, &prevFrom, &prevCamp, &prevOrigin); err != nil {
		return nil, err
	}
	d.OfferedAt, d.InstalledAt, d.UpdatedAt = nullTime(offered), nullTime(installed), fromMS(updated)
	if hadPrev == 1 {
		d.PrevTarget = &lodestone.OTATarget{DeviceID: d.DeviceID, TargetVersion: prevVer.String,
			TargetBuildID: uint64(prevBuild.Int64), FirmwareURL: nullString(prevURL), FirmwareID: nullInt(prevFW),
			FromVersion: nullString(prevFrom), CampaignID: nullInt(prevCamp), Origin: origin(prevOrigin.String)}
	}
	return &d, nil
}

// FindCampaignDevices implements lodestone.CampaignStore.
func (s *Store) FindCampaignDevices(ctx context.Context, id int64) ([]*lodestone.CampaignDevice, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+campaignDeviceColumns+
		` FROM ota_campaign_devices WHERE campaign_id = ? ORDER BY device_id`), id)
	out, err := collect(rows, err, scanCampaignDevice)
	return out, s.wrap(err, "list campaign devices")
}

// CountCampaignDevices implements lodestone.CampaignStore.
func (s *Store) CountCampaignDevices(ctx context.Context, id int64) (lodestone.CampaignCounts, error) {
	var c lodestone.CampaignCounts
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT status, count(*) FROM ota_campaign_devices
		WHERE campaign_id = ? GROUP BY status`), id)
	if err != nil {
		return c, s.wrap(err, "count campaign devices")
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return c, s.wrap(err, "count campaign devices")
		}
		switch st {
		case lodestone.OTAPending:
			c.Pending = n
		case lodestone.OTAOffered:
			c.Offered = n
		case lodestone.OTADownloading:
			c.Downloading = n
		case lodestone.OTAInstalled:
			c.Installed = n
		case lodestone.OTAFailed:
			c.Failed = n
		}
	}
	return c, s.wrap(rows.Err(), "count campaign devices")
}

func (s *Store) lockCampaign(ctx context.Context, tx *sql.Tx, id int64) (*lodestone.Campaign, error) {
	c, err := scanCampaign(tx.QueryRowContext(ctx, s.q(`SELECT `+campaignColumns+
		` FROM ota_campaigns WHERE id = ?`+s.forUpdate()), id))
	return c, notFound(err, "campaign not found")
}

// SetCampaignStatus implements lodestone.CampaignStore.
func (s *Store) SetCampaignStatus(ctx context.Context, id int64, from []string, to, reason string,
	now time.Time) (*lodestone.Campaign, error) {
	var c *lodestone.Campaign
	err := s.audited(ctx, "set campaign status", "campaign.status", lodestone.AuditCampaign, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		var err error
		if c, err = s.lockCampaign(ctx, tx, id); err != nil {
			return "", err
		}
		if !slices.Contains(from, c.Status) {
			return "", lodestone.Errorf(lodestone.EINVALID, "cannot move campaign from '%s' to '%s' status", c.Status, to)
		}
		c.Status, c.HaltReason, c.UpdatedAt = to, reason, now
		if to == lodestone.CampaignActive && c.StartedAt == nil {
			c.StartedAt = &now
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE ota_campaigns SET status = ?, halt_reason = ?, updated_at = ?,
			started_at = ? WHERE id = ?`), to, reason, ms(now), nullMS(c.StartedAt), id)
		return "", err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// OfferWave implements lodestone.CampaignStore.
func (s *Store) OfferWave(ctx context.Context, id int64, wave, n int, now time.Time) (int, error) {
	offered := 0
	err := s.audited(ctx, "offer wave", "campaign.offer_wave", lodestone.AuditCampaign, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		c, err := s.lockCampaign(ctx, tx, id)
		if err != nil {
			return "", err
		}
		fw, err := scanFirmware(tx.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
			` FROM firmware_artifacts WHERE id = ?`), c.FirmwareID))
		if err != nil {
			return "", notFound(err, "campaign firmware artifact not found")
		}
		var ids []string
		if n > 0 {
			rows, err := tx.QueryContext(ctx, s.q(`SELECT device_id FROM ota_campaign_devices
				WHERE campaign_id = ? AND status = 'pending' ORDER BY device_id LIMIT ?`), id, n)
			if err != nil {
				return "", err
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return "", err
				}
				ids = append(ids, d)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return "", err
			}
		}
		url := "/ota/firmware/" + strconv.FormatInt(fw.ID, 10) + "/download"
		for _, d := range ids {
			prev, err := scanTarget(tx.QueryRowContext(ctx, s.q(`SELECT `+targetColumns+
				` FROM ota_targets WHERE device_id = ?`), d))
			had := 1
			if err == sql.ErrNoRows {
				had, prev = 0, &lodestone.OTATarget{}
			} else if err != nil {
				return "", err
			}
			var prevVer any
			if had == 1 {
				prevVer = prev.TargetVersion
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE ota_campaign_devices SET status = 'offered', wave = ?,
				offered_at = ?, updated_at = ?, had_prev = ?, prev_target_version = ?, prev_target_build_id = ?,
				prev_firmware_url = ?, prev_firmware_id = ?, prev_from_version = ?, prev_campaign_id = ?,
				prev_origin = ? WHERE campaign_id = ? AND device_id = ?`), wave, ms(now), ms(now), had, prevVer,
				int64(prev.TargetBuildID), ptr(prev.FirmwareURL), ptr(prev.FirmwareID), ptr(prev.FromVersion),
				ptr(prev.CampaignID), prevOrigin(had, prev), id, d); err != nil {
				return "", err
			}
			fwID, campID := fw.ID, id
			if err := s.setTarget(ctx, tx, &lodestone.OTATarget{DeviceID: d, TargetVersion: c.TargetVersion,
				TargetBuildID: fw.BuildID, FirmwareURL: &url, FirmwareID: &fwID, CampaignID: &campID,
				CreatedAt: now}); err != nil {
				return "", err
			}
		}
		offered = len(ids)
		_, err = tx.ExecContext(ctx, s.q(`UPDATE ota_campaigns SET wave = ?, wave_started_at = ?, updated_at = ?
			WHERE id = ?`), wave, ms(now), ms(now), id)
		return "", err
	})
	return offered, err
}

// ExpireCampaignDevices implements lodestone.CampaignStore.
func (s *Store) ExpireCampaignDevices(ctx context.Context, id int64, offeredBefore, downloadingBefore,
	now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, "expire campaign devices", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE ota_campaign_devices SET status = 'failed', reason = 'timeout',
			updated_at = ? WHERE campaign_id = ? AND ((status = 'offered' AND offered_at < ?)
			OR (status = 'downloading' AND updated_at < ?))`), ms(now), id, ms(offeredBefore), ms(downloadingBefore))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// EndCampaign implements lodestone.CampaignStore.
func (s *Store) EndCampaign(ctx context.Context, id int64, from []string, to string, restoreInstalled bool,
	now time.Time) (int, error) {
	restored := 0
	err := s.audited(ctx, "end campaign", "campaign.end", lodestone.AuditCampaign, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		c, err := s.lockCampaign(ctx, tx, id)
		if err != nil {
			return "", err
		}
		if !slices.Contains(from, c.Status) {
			return "", lodestone.Errorf(lodestone.EINVALID, "cannot move campaign from '%s' to '%s' status", c.Status, to)
		}
		q := `SELECT ` + campaignDeviceColumns + ` FROM ota_campaign_devices WHERE campaign_id = ? AND status <> 'pending'`
		if !restoreInstalled {
			q += ` AND status <> 'installed'`
		}
		rows, err := tx.QueryContext(ctx, s.q(q), id)
		devs, err := collect(rows, err, scanCampaignDevice)
		if err != nil {
			return "", err
		}
		for _, d := range devs {
			// Only a target this campaign still owns goes back; one set since by hand or by another campaign stays.
			var res sql.Result
			if d.PrevTarget == nil {
				res, err = tx.ExecContext(ctx, s.q(`DELETE FROM ota_targets WHERE device_id = ? AND campaign_id = ?`),
					d.DeviceID, id)
			} else {
				p := d.PrevTarget
				// The saved artifact may have been deleted since: restore the target without it then.
				res, err = tx.ExecContext(ctx, s.q(`UPDATE ota_targets SET target_version = ?, target_build_id = ?,
					firmware_url = ?, firmware_id = (SELECT id FROM firmware_artifacts WHERE id = ?),
					from_version = ?, campaign_id = ?, origin = ?, created_at = ?
					WHERE device_id = ? AND campaign_id = ?`), p.TargetVersion, int64(p.TargetBuildID),
					ptr(p.FirmwareURL), ptr(p.FirmwareID), ptr(p.FromVersion), ptr(p.CampaignID), origin(p.Origin),
					ms(now), d.DeviceID, id)
			}
			if err != nil {
				return "", err
			}
			if k, _ := res.RowsAffected(); k > 0 {
				restored++
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE ota_campaigns SET status = ?, updated_at = ? WHERE id = ?`), to,
			ms(now), id)
		return "", err
	})
	return restored, err
}

// prevOrigin is the saved target's origin, or NULL when there was none.
func prevOrigin(had int, prev *lodestone.OTATarget) any {
	if had == 0 {
		return nil
	}
	return origin(prev.Origin)
}

// CampaignHealth implements lodestone.CampaignStore. It reads the same figures as the stability report
// (stabilityTotals) for the campaign's devices, failed ones left out (their firmware is uncertain), over the whole
// hours covering [since, now): device-hours, faults and unexpected reboots on the campaign's version are the new
// firmware's, on any other version the old firmware's. A device that updated counts on each side for its time
// there.
func (s *Store) CampaignHealth(ctx context.Context, id int64, since, now time.Time) (lodestone.CampaignHealth,
	error) {
	var h lodestone.CampaignHealth
	target, err := s.campaignTarget(ctx, id)
	if err != nil {
		return h, s.wrap(err, "campaign health")
	}
	from, to := lodestone.StabilityRange(since, now)
	totals, err := s.stabilityTotals(ctx, ms(from), ms(to), campaignScope(id), nil)
	if err != nil {
		return h, s.wrap(err, "campaign health")
	}
	for v, t := range totals {
		if v == target {
			h.NewDevices, h.NewHours, h.NewFaults, h.NewReboots = t.Devices, t.DeviceHours, t.Faults, t.UnexpectedReboots
		} else {
			h.OldDevices += t.Devices
			h.OldHours += t.DeviceHours
			h.OldFaults += t.Faults
			h.OldReboots += t.UnexpectedReboots
		}
	}
	return h, nil
}

// ReportOTA implements lodestone.CampaignStore.
func (s *Store) ReportOTA(ctx context.Context, r lodestone.OTAReport, now time.Time) (string, error) {
	// Devices confirm their firmware in every session; look before taking the writer for what is usually a no-op.
	var cur sql.NullString
	err := s.r.QueryRowContext(ctx, s.q(`SELECT cd.status FROM ota_targets t JOIN ota_campaign_devices cd
		ON cd.campaign_id = t.campaign_id AND cd.device_id = t.device_id WHERE t.device_id = ?`), r.DeviceID).Scan(&cur)
	if err == sql.ErrNoRows {
		return "", nil
	} else if err != nil {
		return "", s.wrap(err, "report OTA")
	}
	if cur.String == r.Status || cur.String == lodestone.OTAInstalled || cur.String == lodestone.OTAPending {
		return cur.String, nil
	}
	var status string
	err = s.tx(ctx, "report OTA", func(tx *sql.Tx) error {
		var camp sql.NullInt64
		err := tx.QueryRowContext(ctx, s.q(`SELECT campaign_id FROM ota_targets WHERE device_id = ?`),
			r.DeviceID).Scan(&camp)
		if err == sql.ErrNoRows || (err == nil && !camp.Valid) {
			return nil
		} else if err != nil {
			return err
		}
		var cur string
		err = tx.QueryRowContext(ctx, s.q(`SELECT status FROM ota_campaign_devices WHERE campaign_id = ?
			AND device_id = ?`), camp.Int64, r.DeviceID).Scan(&cur)
		if err == sql.ErrNoRows {
			return nil
		} else if err != nil {
			return err
		}
		status = cur
		// installed is final; failed may still turn into installed (a retry that worked); nothing goes backwards.
		rank := map[string]int{lodestone.OTAPending: 0, lodestone.OTAOffered: 1, lodestone.OTADownloading: 2,
			lodestone.OTAFailed: 3, lodestone.OTAInstalled: 4}
		if cur == lodestone.OTAPending || rank[r.Status] <= rank[cur] && !(cur == lodestone.OTAFailed &&
			r.Status == lodestone.OTADownloading) {
			return nil
		}
		var installedAt any
		if r.Status == lodestone.OTAInstalled {
			installedAt = ms(now)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE ota_campaign_devices SET status = ?, reason = ?, updated_at = ?,
			installed_at = COALESCE(?, installed_at) WHERE campaign_id = ? AND device_id = ?`), r.Status, r.Reason,
			ms(now), installedAt, camp.Int64, r.DeviceID); err != nil {
			return err
		}
		status = r.Status
		return nil
	})
	return status, err
}
