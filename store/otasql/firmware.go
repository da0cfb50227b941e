package otasql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

const firmwareColumns = `id, version, build_id, sha256, size, filename, signer, notes, created_at`

func scanFirmware(s scanner) (*lodestone.Firmware, error) {
	var f lodestone.Firmware
	var build, created int64
	var signer sql.NullString
	if err := s.Scan(&f.ID, &f.Version, &build, &f.SHA256, &f.Size, &f.Filename, &signer, &f.Notes,
		&created); err != nil {
		return nil, err
	}
	f.BuildID, f.Signer, f.CreatedAt = uint64(build), nullString(signer), fromMS(created)
	return &f, nil
}

// CreateFirmware implements lodestone.FirmwareService.
func (s *Store) CreateFirmware(ctx context.Context, f *lodestone.Firmware) error {
	return s.tx(ctx, "create firmware", func(tx *sql.Tx) error {
		return s.insertFirmware(ctx, tx, f)
	})
}

func (s *Store) insertFirmware(ctx context.Context, tx *sql.Tx, f *lodestone.Firmware) error {
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO firmware_artifacts
		(version, build_id, sha256, size, filename, signer, notes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`), f.Version, int64(f.BuildID), f.SHA256, f.Size, f.Filename, ptr(f.Signer), f.Notes,
		ms(f.CreatedAt)).Scan(&f.ID)
	if uniqueViolation(err) {
		return lodestone.Errorf(lodestone.ECONFLICT, "a firmware artifact named %q exists", f.Filename)
	}
	return err
}

// PutFirmware implements lodestone.FirmwareService.
func (s *Store) PutFirmware(ctx context.Context, f *lodestone.Firmware) (*lodestone.BlobRef, error) {
	var replaced *lodestone.BlobRef
	err := s.tx(ctx, "put firmware", func(tx *sql.Tx) error {
		old, err := scanFirmware(tx.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
			` FROM firmware_artifacts WHERE filename = ?`+s.forUpdate()), f.Filename))
		if err == sql.ErrNoRows {
			return s.insertFirmware(ctx, tx, f)
		} else if err != nil {
			return err
		}
		if old.SHA256 != f.SHA256 {
			replaced = &lodestone.BlobRef{SHA256: old.SHA256, Size: old.Size}
		}
		f.ID = old.ID
		_, err = tx.ExecContext(ctx, s.q(`UPDATE firmware_artifacts SET version = ?, build_id = ?, sha256 = ?,
			size = ?, signer = ?, notes = ?, created_at = ? WHERE id = ?`), f.Version, int64(f.BuildID), f.SHA256,
			f.Size, ptr(f.Signer), f.Notes, ms(f.CreatedAt), f.ID)
		return err
	})
	return replaced, err
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
	err := s.tx(ctx, "delete firmware", func(tx *sql.Tx) error {
		var err error
		f, err = scanFirmware(tx.QueryRowContext(ctx, s.q(`SELECT `+firmwareColumns+
			` FROM firmware_artifacts WHERE id = ?`+s.forUpdate()), id))
		if err != nil {
			return notFound(err, "firmware artifact not found")
		}
		var used int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM ota_campaigns WHERE firmware_id = ?`),
			id).Scan(&used); err != nil {
			return err
		}
		if used > 0 {
			return lodestone.Errorf(lodestone.ECONFLICT, "firmware artifact %d is used by %d campaign(s)", id, used)
		}
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM firmware_artifacts WHERE id = ?`), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
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
