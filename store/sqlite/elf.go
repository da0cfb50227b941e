package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

const elfColumns = `id, version, build_id, build_id64, sha256, size, filename, created_at`

func scanELF(s scanner) (*lodestone.ELF, error) {
	var e lodestone.ELF
	var b64, at int64
	if err := s.Scan(&e.ID, &e.Version, &e.BuildID, &b64, &e.Blob.SHA256, &e.Blob.Size, &e.Filename,
		&at); err != nil {
		return nil, err
	}
	e.BuildID64, e.CreatedAt = uint64(b64), fromMS(at)
	return &e, nil
}

// CreateELF implements lodestone.ELFService.
func (db *DB) CreateELF(ctx context.Context, e *lodestone.ELF) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin ELF insert: %w", err)
	}
	defer tx.Rollback()
	a, err := auditsql.Begin(ctx, auditsql.SQL(tx), schema.SQLite, "elf.upload", lodestone.AuditELF, "")
	if err != nil {
		return err
	}
	now := db.now().UTC().Truncate(time.Millisecond)
	if err := tx.QueryRowContext(ctx, `INSERT INTO elfs (version, build_id, build_id64, sha256, size, filename,
		created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, e.Version, e.BuildID, int64(e.BuildID64),
		e.Blob.SHA256, e.Blob.Size, e.Filename, ms(now)).Scan(&e.ID); err != nil {
		return fmt.Errorf("sqlite: insert ELF: %w", err)
	}
	e.CreatedAt = now
	// Late symbols: faults of this firmware that found no ELF go back to the workers.
	if _, err := tx.ExecContext(ctx, `UPDATE faults SET sym_state = 0, sym_claim = NULL
		WHERE sym_state = 2 AND (firmware_version = ?1 OR (?2 <> 0 AND build_id = ?2))`,
		e.Version, int64(e.BuildID64)); err != nil {
		return fmt.Errorf("sqlite: queue faults for late symbols: %w", err)
	}
	if err := a.Done(ctx, auditsql.SQL(tx), fmt.Sprint(e.ID)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit ELF: %w", err)
	}
	return nil
}

// FindELFByID implements lodestone.ELFService.
func (db *DB) FindELFByID(ctx context.Context, id int64) (*lodestone.ELF, error) {
	e, err := scanELF(db.r.QueryRowContext(ctx, `SELECT `+elfColumns+` FROM elfs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "ELF %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: read ELF %d: %w", id, err)
	}
	return e, nil
}

// FindELFs implements lodestone.ELFService.
func (db *DB) FindELFs(ctx context.Context, limit, offset int) ([]*lodestone.ELF, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+elfColumns+` FROM elfs ORDER BY id DESC LIMIT ? OFFSET ?`,
		lodestone.ClampLimit(limit), max(offset, 0))
	return collect(rows, true, err, "ELF", func(rows *sql.Rows) (*lodestone.ELF, error) { return scanELF(rows) })
}

// MatchELF implements lodestone.ELFService.
func (db *DB) MatchELF(ctx context.Context, version string, buildID uint64) (*lodestone.ELF, error) {
	if buildID != 0 {
		e, err := scanELF(db.r.QueryRowContext(ctx, `SELECT `+elfColumns+` FROM elfs WHERE build_id64 = ?
			ORDER BY id DESC LIMIT 1`, int64(buildID)))
		if err == nil {
			return e, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: match ELF by build id: %w", err)
		}
	}
	if version != "" {
		e, err := scanELF(db.r.QueryRowContext(ctx, `SELECT `+elfColumns+` FROM elfs WHERE version = ?
			ORDER BY id DESC LIMIT 1`, version))
		if err == nil {
			return e, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: match ELF by version: %w", err)
		}
	}
	return nil, lodestone.Errorf(lodestone.ENOTFOUND, "no ELF for firmware %q build %016x", version, buildID)
}

// DeleteELF implements lodestone.ELFService.
func (db *DB) DeleteELF(ctx context.Context, id int64) (*lodestone.ELF, bool, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: begin ELF delete: %w", err)
	}
	defer tx.Rollback()
	a, err := auditsql.Begin(ctx, auditsql.SQL(tx), schema.SQLite, "elf.delete", lodestone.AuditELF, fmt.Sprint(id))
	if err != nil {
		return nil, false, err
	}
	e, err := scanELF(tx.QueryRowContext(ctx, `DELETE FROM elfs WHERE id = ? RETURNING `+elfColumns, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, lodestone.Errorf(lodestone.ENOTFOUND, "ELF %d not found", id)
	} else if err != nil {
		return nil, false, fmt.Errorf("sqlite: delete ELF %d: %w", id, err)
	}
	var shared bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM elfs WHERE sha256 = ?)`,
		e.Blob.SHA256).Scan(&shared); err != nil {
		return nil, false, fmt.Errorf("sqlite: check ELF blob use: %w", err)
	}
	if err := a.Done(ctx, auditsql.SQL(tx), ""); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("sqlite: commit ELF delete: %w", err)
	}
	return e, shared, nil
}
