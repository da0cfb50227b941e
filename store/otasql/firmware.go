package otasql

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

const firmwareColumns = `id, version, build_id, sha256, size, filename, signer, notes, created_at, origin,
	fuota_path, approved_at, approved_by`

func scanFirmware(s scanner) (*lodestone.Firmware, error) {
	var f lodestone.Firmware
	var build, created int64
	var signer, path, approvedBy sql.NullString
	var approved sql.NullInt64
	if err := s.Scan(&f.ID, &f.Version, &build, &f.SHA256, &f.Size, &f.Filename, &signer, &f.Notes,
		&created, &f.Origin, &path, &approved, &approvedBy); err != nil {
		return nil, err
	}
	f.BuildID, f.Signer, f.CreatedAt = uint64(build), nullString(signer), fromMS(created)
	f.FUOTAPath, f.ApprovedAt, f.ApprovedBy = nullString(path), nullTime(approved), approvedBy.String
	return &f, nil
}

func origin(o string) string {
	if o == "" {
		return lodestone.OriginOperator
	}
	return o
}

// CreateFirmware implements lodestone.FirmwareService.
func (s *Store) CreateFirmware(ctx context.Context, f *lodestone.Firmware) error {
	return s.audited(ctx, "create firmware", "firmware.create", lodestone.AuditFirmware, "", func(tx *sql.Tx) (string, error) {
		err := s.insertFirmware(ctx, tx, f)
		return fmt.Sprint(f.ID), err
	})
}

func (s *Store) insertFirmware(ctx context.Context, tx *sql.Tx, f *lodestone.Firmware) error {
	f.Origin = origin(f.Origin)
	var by any
	if f.ApprovedAt != nil {
		by = f.ApprovedBy
	}
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO firmware_artifacts
		(version, build_id, sha256, size, filename, signer, notes, created_at, origin, fuota_path, approved_at,
		approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`), f.Version, int64(f.BuildID), f.SHA256, f.Size, f.Filename, ptr(f.Signer), f.Notes,
		ms(f.CreatedAt), f.Origin, ptr(f.FUOTAPath), nullMS(f.ApprovedAt), by).Scan(&f.ID)
	if uniqueViolation(err) {
		return lodestone.Errorf(lodestone.ECONFLICT, "a firmware artifact named %q exists", f.Filename)
	}
	return err
}

// PutFUOTAFirmware implements lodestone.FirmwareService. Artifacts are never rewritten: a new upload under a path
// is a new row, and the path follows the newest one.
func (s *Store) PutFUOTAFirmware(ctx context.Context, f *lodestone.Firmware) (bool, error) {
	path := f.Filename
	created := false
	err := s.audited(ctx, "put FUOTA firmware", "firmware.fuota_put", lodestone.AuditFirmware, "", func(tx *sql.Tx) (string, error) {
		cur, err := s.newestByPath(ctx, tx, path, true)
		if err != nil && err != sql.ErrNoRows {
			return "", err
		}
		if cur == nil {
			// A path nobody uploaded through FUOTA yet: it must not be another artifact's name.
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM firmware_artifacts WHERE filename = ?`),
				path).Scan(&n); err != nil {
				return "", err
			}
			if n > 0 {
				return "", lodestone.Errorf(lodestone.ECONFLICT, "%q names an artifact that was not uploaded through "+
					"FUOTA; it is read-only here", path)
			}
		} else if cur.SHA256 == f.SHA256 && cur.Version == f.Version && cur.BuildID == f.BuildID {
			*f = *cur // the same upload again
			return fmt.Sprint(f.ID), nil
		}
		f.Origin, f.FUOTAPath, f.ApprovedAt, f.ApprovedBy, f.Filename = lodestone.OriginFUOTA, &path, nil, "", path
		if cur != nil {
			// The path keeps naming the newest upload; older ones keep their own unique names.
			if f.Filename, err = s.freeName(ctx, tx, path+"~"+f.SHA256[:min(8, len(f.SHA256))]); err != nil {
				return "", err
			}
		}
		if err := s.insertFirmware(ctx, tx, f); err != nil {
			return "", err
		}
		created = true
		if cur == nil {
			return fmt.Sprint(f.ID), nil
		}
		// FUOTA's own targets name the path, so they follow it; operators' and campaigns' keep their artifact,
		// and so does a FUOTA row whose device lodestone manages since (what PUT /devices may not write).
		_, err = tx.ExecContext(ctx, s.q(`UPDATE ota_targets SET firmware_id = ?, target_version = ?,
			target_build_id = ? WHERE origin = 'fuota' AND campaign_id IS NULL AND firmware_id IN
			(SELECT id FROM firmware_artifacts WHERE fuota_path = ? AND origin = 'fuota')
			AND `+fuotaDevice), f.ID, f.Version, int64(f.BuildID), path)
		return fmt.Sprint(f.ID), err
	})
	return created, err
}

// newestByPath returns the newest FUOTA upload under path, or sql.ErrNoRows.
func (s *Store) newestByPath(ctx context.Context, q querier, path string, lock bool) (*lodestone.Firmware, error) {
	query := `SELECT ` + firmwareColumns + ` FROM firmware_artifacts WHERE fuota_path = ? AND origin = 'fuota'
		ORDER BY id DESC LIMIT 1`
	if lock {
		query += s.forUpdate()
	}
	return scanFirmware(q.QueryRowContext(ctx, s.q(query), path))
}

// freeName returns name, or name-2, name-3, … whichever no artifact has.
func (s *Store) freeName(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	for i := 1; i < 1000; i++ {
		try := name
		if i > 1 {
			try = name + "-" + strconv.Itoa(i)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM firmware_artifacts WHERE filename = ?`),
			try).Scan(&n); err != nil {
			return "", err
		}
		if n == 0 {
			return try, nil
		}
	}
	return "", lodestone.Errorf(lodestone.ECONFLICT, "too many uploads of %q", name)
}

// FindFirmwareByFUOTAPath implements lodestone.FirmwareService.
func (s *Store) FindFirmwareByFUOTAPath(ctx context.Context, path string) (*lodestone.Firmware, error) {
	f, err := s.newestByPath(ctx, s.r, path, false)
	if err != nil {
		return nil, s.wrap(notFound(err, "update file not found"), "find firmware by FUOTA path")
	}
	return f, nil
}

// ApproveFirmware implements lodestone.FirmwareService.
func (s *Store) ApproveFirmware(ctx context.Context, id int64, by string, at time.Time) (*lodestone.Firmware,
	error) {
	var f *lodestone.Firmware
	err := s.audited(ctx, "approve firmware", "firmware.approve", lodestone.AuditFirmware, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE firmware_artifacts SET approved_at = ?, approved_by = ?
			WHERE id = ? AND approved_at IS NULL`), ms(at), by, id); err != nil {
			return "", err
		}
		var err error
		f, err = scanFirmware(tx.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
			` FROM firmware_artifacts WHERE id = ?`), id))
		return "", notFound(err, "firmware artifact not found")
	})
	return f, err
}

// FindFirmwareByID implements lodestone.FirmwareService.
func (s *Store) FindFirmwareByID(ctx context.Context, id int64) (*lodestone.Firmware, error) {
	f, err := scanFirmware(s.r.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
		` FROM firmware_artifacts WHERE id = ?`), id))
	if err != nil {
		return nil, s.wrap(notFound(err, "firmware artifact not found"), "find firmware")
	}
	return f, nil
}

// FindFirmwareByFilename implements lodestone.FirmwareService.
func (s *Store) FindFirmwareByFilename(ctx context.Context, name string) (*lodestone.Firmware, error) {
	f, err := scanFirmware(s.r.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
		` FROM firmware_artifacts WHERE filename = ?`), name))
	if err != nil {
		return nil, s.wrap(notFound(err, "firmware artifact not found"), "find firmware by name")
	}
	return f, nil
}

// FindFirmware implements lodestone.FirmwareService.
func (s *Store) FindFirmware(ctx context.Context) ([]*lodestone.Firmware, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+firmwareColumns+
		` FROM firmware_artifacts ORDER BY created_at DESC, id DESC`)
	out, err := collect(rows, err, scanFirmware)
	return out, s.wrap(err, "list firmware")
}

// DeleteFirmware implements lodestone.FirmwareService.
func (s *Store) DeleteFirmware(ctx context.Context, id int64) (*lodestone.Firmware, error) {
	var f *lodestone.Firmware
	err := s.audited(ctx, "delete firmware", "firmware.delete", lodestone.AuditFirmware, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		var err error
		f, err = scanFirmware(tx.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
			` FROM firmware_artifacts WHERE id = ?`+s.forUpdate()), id))
		if err != nil {
			return "", notFound(err, "firmware artifact not found")
		}
		if err := s.refuseUsed(ctx, tx, id); err != nil {
			return "", err
		}
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM firmware_artifacts WHERE id = ?`), id)
		return "", err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// refuseUsed refuses to remove an artifact that a campaign installs, a target names, or a running campaign will
// give back to a device (its saved target).
func (s *Store) refuseUsed(ctx context.Context, tx *sql.Tx, id int64) error {
	var campaigns, targets, saved int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT
		(SELECT count(*) FROM ota_campaigns WHERE firmware_id = ?),
		(SELECT count(*) FROM ota_targets WHERE firmware_id = ?),
		(SELECT count(*) FROM ota_campaign_devices d JOIN ota_campaigns c ON c.id = d.campaign_id
			WHERE d.prev_firmware_id = ? AND c.status NOT IN ('completed', 'aborted', 'rolled_back'))`),
		id, id, id).Scan(&campaigns, &targets, &saved); err != nil {
		return err
	}
	switch {
	case campaigns > 0:
		return lodestone.Errorf(lodestone.ECONFLICT, "firmware artifact %d is used by %d campaign(s)", id, campaigns)
	case targets > 0:
		return lodestone.Errorf(lodestone.ECONFLICT, "firmware artifact %d is the target of %d device(s)", id, targets)
	case saved > 0:
		return lodestone.Errorf(lodestone.ECONFLICT,
			"firmware artifact %d is the saved target of %d device(s) in running campaigns", id, saved)
	}
	return nil
}

// FirmwareBlobInUse implements lodestone.FirmwareService.
func (s *Store) FirmwareBlobInUse(ctx context.Context, sha256 string) (bool, error) {
	var n int
	// Blobs are content-addressed and shared between features: an ELF file with the same bytes keeps it too.
	err := s.r.QueryRowContext(ctx, s.q(`SELECT (SELECT count(*) FROM firmware_artifacts WHERE sha256 = ?)
		+ (SELECT count(*) FROM elfs WHERE sha256 = ?)`), sha256, sha256).Scan(&n)
	return n > 0, s.wrap(err, "check firmware blob")
}

// wrap adds the backend and operation to internal errors and passes coded ones through.
func (s *Store) wrap(err error, what string) error {
	if err == nil || lodestone.ErrorCode(err) != lodestone.EINTERNAL {
		return err
	}
	return fmt.Errorf("%s: %s: %w", s.name, what, err)
}
