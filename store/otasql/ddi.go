package otasql

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.DDIStore = (*Store)(nil)

const ddiActionColumns = `id, device_id, target_id, target_created_at, firmware_id, campaign_id, version, status,
	result, execution, detail, retrieved_at, created_at, updated_at`

func scanDDIAction(s scanner) (*lodestone.DDIAction, error) {
	var a lodestone.DDIAction
	var targetAt, created, updated int64
	var camp, retrieved sql.NullInt64
	if err := s.Scan(&a.ID, &a.DeviceID, &a.TargetID, &targetAt, &a.FirmwareID, &camp, &a.Version, &a.Status,
		&a.Result, &a.Execution, &a.Detail, &retrieved, &created, &updated); err != nil {
		return nil, err
	}
	a.TargetCreatedAt, a.CreatedAt, a.UpdatedAt = fromMS(targetAt), fromMS(created), fromMS(updated)
	a.CampaignID, a.RetrievedAt = nullInt(camp), nullTime(retrieved)
	return &a, nil
}

// reader is a *sql.DB or a *sql.Tx.
type reader interface {
	querier
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ddiState is what decides a controller's actions: its newest action, its OTA target and its recorded version.
type ddiState struct {
	latest  *lodestone.DDIAction
	target  *lodestone.OTATarget
	version string
}

func (s *Store) readDDIState(ctx context.Context, q reader, deviceID string, lock bool) (ddiState, error) {
	var st ddiState
	forUpdate := ""
	if lock {
		forUpdate = s.forUpdate()
	}
	t, err := scanTarget(q.QueryRowContext(ctx, s.q(`SELECT `+targetColumns+` FROM ota_targets WHERE device_id = ?`+
		forUpdate), deviceID))
	switch {
	case err == nil:
		st.target = t
	case !errors.Is(err, sql.ErrNoRows):
		return st, err
	}
	a, err := scanDDIAction(q.QueryRowContext(ctx, s.q(`SELECT `+ddiActionColumns+` FROM ddi_actions
		WHERE device_id = ? ORDER BY id DESC LIMIT 1`), deviceID))
	switch {
	case err == nil:
		st.latest = a
	case !errors.Is(err, sql.ErrNoRows):
		return st, err
	}
	err = q.QueryRowContext(ctx, s.q(`SELECT firmware_version FROM devices WHERE device_id = ?`), deviceID).
		Scan(&st.version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, err
	}
	return st, nil
}

// deployable reports whether the target is a DDI deployment: it names an artifact and, with a from_version, the
// device is recorded as running that version.
func (st ddiState) deployable() bool {
	t := st.target
	return t != nil && t.FirmwareID != nil && (t.FromVersion == nil || *t.FromVersion == st.version)
}

// matches reports whether action a came from the current target assignment.
func (st ddiState) matches(a *lodestone.DDIAction) bool {
	t := st.target
	return a != nil && st.deployable() && a.TargetID == t.ID && a.TargetCreatedAt.Equal(t.CreatedAt) &&
		a.FirmwareID == *t.FirmwareID
}

// plan returns the action to offer and the one awaiting a cancel, and whether the stored actions must change.
func (st ddiState) plan() (offer, cancel *lodestone.DDIAction, change bool) {
	a := st.latest
	switch {
	case a != nil && a.Status == lodestone.DDICanceling:
		return nil, a, false
	case a != nil && a.Status == lodestone.DDIOpen && st.matches(a):
		return a, nil, false
	case a != nil && a.Status == lodestone.DDIOpen:
		return nil, nil, true // its assignment is gone
	case st.matches(a):
		return nil, nil, false // finished
	}
	return nil, nil, st.deployable()
}

// SyncDDIAction implements lodestone.DDIStore. Polls are frequent and usually change nothing, so the writer is
// taken only when a read says something must change.
func (s *Store) SyncDDIAction(ctx context.Context, deviceID string, now time.Time) (offer,
	cancel *lodestone.DDIAction, err error) {
	st, err := s.readDDIState(ctx, s.r, deviceID, false)
	if err != nil {
		return nil, nil, s.wrap(err, "read DDI actions")
	}
	offer, cancel, change := st.plan()
	if !change {
		return offer, cancel, nil
	}
	err = s.tx(ctx, "sync DDI actions", func(tx *sql.Tx) error {
		st, err := s.readDDIState(ctx, tx, deviceID, true)
		if err != nil {
			return err
		}
		var change bool
		if offer, cancel, change = st.plan(); !change {
			return nil
		}
		if a := st.latest; a != nil && a.Status == lodestone.DDIOpen {
			a.Status, a.UpdatedAt = lodestone.DDICanceled, now
			if a.RetrievedAt != nil {
				// The controller may be installing it: it must confirm the cancel before anything new.
				a.Status = lodestone.DDICanceling
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE ddi_actions SET status = ?, updated_at = ? WHERE id = ?`),
				a.Status, ms(now), a.ID); err != nil {
				return err
			}
			if a.Status == lodestone.DDICanceling {
				offer, cancel = nil, a
				return nil
			}
		}
		if !st.deployable() {
			return nil
		}
		t := st.target
		a := &lodestone.DDIAction{DeviceID: deviceID, TargetID: t.ID, TargetCreatedAt: t.CreatedAt,
			FirmwareID: *t.FirmwareID, CampaignID: t.CampaignID, Version: t.TargetVersion, Status: lodestone.DDIOpen,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO ddi_actions (device_id, target_id, target_created_at,
			firmware_id, campaign_id, version, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING id`), deviceID, t.ID, ms(t.CreatedAt), a.FirmwareID, ptr(a.CampaignID), a.Version, a.Status,
			ms(now), ms(now)).Scan(&a.ID); err != nil {
			return err
		}
		offer, cancel = a, nil
		return nil
	})
	return offer, cancel, err
}

// FindDDIAction implements lodestone.DDIStore.
func (s *Store) FindDDIAction(ctx context.Context, deviceID string, id int64) (*lodestone.DDIAction, error) {
	a, err := scanDDIAction(s.r.QueryRowContext(ctx, s.q(`SELECT `+ddiActionColumns+` FROM ddi_actions
		WHERE id = ? AND device_id = ?`), id, deviceID))
	if err != nil {
		return nil, s.wrap(notFound(err, "no such action for this controller"), "find DDI action")
	}
	return a, nil
}

// FindDDIActions implements lodestone.DDIStore.
func (s *Store) FindDDIActions(ctx context.Context, deviceID string, limit int) ([]*lodestone.DDIAction, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+ddiActionColumns+` FROM ddi_actions WHERE device_id = ?
		ORDER BY id DESC LIMIT ?`), deviceID, limit)
	out, err := collect(rows, err, scanDDIAction)
	return out, s.wrap(err, "list DDI actions")
}

// RetrieveDDIAction implements lodestone.DDIStore.
func (s *Store) RetrieveDDIAction(ctx context.Context, deviceID string, id int64, now time.Time) error {
	return s.tx(ctx, "retrieve DDI action", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE ddi_actions SET retrieved_at = ?, updated_at = ?
			WHERE id = ? AND device_id = ? AND retrieved_at IS NULL`), ms(now), ms(now), id, deviceID)
		return err
	})
}

// UpdateDDIAction implements lodestone.DDIStore.
func (s *Store) UpdateDDIAction(ctx context.Context, a *lodestone.DDIAction) error {
	return s.tx(ctx, "update DDI action", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE ddi_actions SET status = ?, result = ?, execution = ?,
			detail = ?, updated_at = ? WHERE id = ? AND device_id = ?`), a.Status, a.Result, a.Execution, a.Detail,
			ms(a.UpdatedAt), a.ID, a.DeviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return lodestone.Errorf(lodestone.ENOTFOUND, "no such action for this controller")
		}
		return nil
	})
}

// CurrentDDIAction implements lodestone.DDIStore.
func (s *Store) CurrentDDIAction(ctx context.Context, a *lodestone.DDIAction) (bool, error) {
	st, err := s.readDDIState(ctx, s.r, a.DeviceID, false)
	if err != nil {
		return false, s.wrap(err, "read DDI actions")
	}
	return st.matches(a), nil
}

// BlobHashes implements lodestone.DDIStore.
func (s *Store) BlobHashes(ctx context.Context, sha256 string) (lodestone.BlobHashes, error) {
	var h lodestone.BlobHashes
	err := s.r.QueryRowContext(ctx, s.q(`SELECT md5, sha1, kind FROM blob_hashes WHERE sha256 = ?`), sha256).
		Scan(&h.MD5, &h.SHA1, &h.Kind)
	return h, s.wrap(notFound(err, "no hashes recorded for this blob"), "find blob hashes")
}

// SaveBlobHashes implements lodestone.DDIStore.
func (s *Store) SaveBlobHashes(ctx context.Context, sha256 string, h lodestone.BlobHashes) error {
	return s.tx(ctx, "save blob hashes", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO blob_hashes (sha256, md5, sha1, kind) VALUES (?, ?, ?, ?)
			ON CONFLICT (sha256) DO NOTHING`), sha256, h.MD5, h.SHA1, h.Kind)
		return err
	})
}

// SetDeviceAttributes implements lodestone.DDIStore.
func (s *Store) SetDeviceAttributes(ctx context.Context, deviceID, mode string, attrs map[string]string,
	now time.Time) error {
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	slices.Sort(names) // one lock order for concurrent writers on PostgreSQL
	return s.tx(ctx, "set device attributes", func(tx *sql.Tx) error {
		switch mode {
		case "remove":
			for _, k := range names {
				if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM device_attributes WHERE device_id = ? AND name = ?`),
					deviceID, k); err != nil {
					return err
				}
			}
			return nil
		case "replace":
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM device_attributes WHERE device_id = ?`),
				deviceID); err != nil {
				return err
			}
		case "merge", "":
		default:
			return lodestone.Errorf(lodestone.EINVALID, "mode must be merge, replace or remove")
		}
		for _, k := range names {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO device_attributes (device_id, name, value, updated_at)
				VALUES (?, ?, ?, ?) ON CONFLICT (device_id, name) DO UPDATE SET value = excluded.value,
				updated_at = excluded.updated_at`), deviceID, k, attrs[k], ms(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeviceAttributes implements lodestone.DDIStore.
func (s *Store) DeviceAttributes(ctx context.Context, deviceID string) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT name, value FROM device_attributes WHERE device_id = ?`),
		deviceID)
	if err != nil {
		return nil, s.wrap(err, "read device attributes")
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, s.wrap(err, "read device attributes")
		}
		out[k] = v
	}
	return out, s.wrap(rows.Err(), "read device attributes")
}
