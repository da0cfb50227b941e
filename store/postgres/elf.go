package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

const elfColumns = `id, version, build_id, build_id64, sha256, size, filename, created_at`

func scanELF(s pgx.Row) (*lodestone.ELF, error) {
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
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := db.audited(ctx, "elf upload", "elf.upload", lodestone.AuditELF, "", func(tx pgx.Tx) (string, error) {
		if err := tx.QueryRow(ctx, `INSERT INTO elfs (version, build_id, build_id64, sha256, size, filename,
			created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, e.Version, e.BuildID, int64(e.BuildID64),
			e.Blob.SHA256, e.Blob.Size, e.Filename, ms(now)).Scan(&e.ID); err != nil {
			return "", fmt.Errorf("postgres: insert ELF: %w", err)
		}
		// Late symbols: faults of this firmware that found no ELF go back to the workers.
		if _, err := tx.Exec(ctx, `UPDATE faults SET sym_state = 0, sym_claim = NULL
			WHERE sym_state = 2 AND (firmware_version = $1 OR ($2::int8 <> 0 AND build_id = $2::int8))`,
			e.Version, int64(e.BuildID64)); err != nil {
			return "", fmt.Errorf("postgres: queue faults for late symbols: %w", err)
		}
		return fmt.Sprint(e.ID), nil
	})
	if err != nil {
		return err
	}
	e.CreatedAt = now
	return nil
}

// FindELFByID implements lodestone.ELFService.
func (db *DB) FindELFByID(ctx context.Context, id int64) (*lodestone.ELF, error) {
	e, err := scanELF(db.pool.QueryRow(ctx, `SELECT `+elfColumns+` FROM elfs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "ELF %d not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: read ELF %d: %w", id, err)
	}
	return e, nil
}

// FindELFs implements lodestone.ELFService.
func (db *DB) FindELFs(ctx context.Context, limit, offset int) ([]*lodestone.ELF, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+elfColumns+` FROM elfs ORDER BY id DESC LIMIT $1 OFFSET $2`,
		lodestone.ClampLimit(limit), max(offset, 0))
	if err != nil {
		return nil, fmt.Errorf("postgres: list ELFs: %w", err)
	}
	return collect(rows, "ELF", func(rows pgx.Rows) (*lodestone.ELF, error) { return scanELF(rows) })
}

// MatchELF implements lodestone.ELFService.
func (db *DB) MatchELF(ctx context.Context, version string, buildID uint64) (*lodestone.ELF, error) {
	if buildID != 0 {
		e, err := scanELF(db.pool.QueryRow(ctx, `SELECT `+elfColumns+` FROM elfs WHERE build_id64 = $1
			ORDER BY id DESC LIMIT 1`, int64(buildID)))
		if err == nil {
			return e, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: match ELF by build id: %w", err)
		}
	}
	if version != "" {
		e, err := scanELF(db.pool.QueryRow(ctx, `SELECT `+elfColumns+` FROM elfs WHERE version = $1
			ORDER BY id DESC LIMIT 1`, version))
		if err == nil {
			return e, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: match ELF by version: %w", err)
		}
	}
	return nil, lodestone.Errorf(lodestone.ENOTFOUND, "no ELF for firmware %q build %016x", version, buildID)
}

// DeleteELF implements lodestone.ELFService.
func (db *DB) DeleteELF(ctx context.Context, id int64) (*lodestone.ELF, bool, error) {
	var e *lodestone.ELF
	var shared bool
	err := db.audited(ctx, "elf delete", "elf.delete", lodestone.AuditELF, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		var err error
		e, err = scanELF(tx.QueryRow(ctx, `DELETE FROM elfs WHERE id = $1 RETURNING `+elfColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "ELF %d not found", id)
		} else if err != nil {
			return "", fmt.Errorf("postgres: delete ELF %d: %w", id, err)
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM elfs WHERE sha256 = $1)`,
			e.Blob.SHA256).Scan(&shared); err != nil {
			return "", fmt.Errorf("postgres: check ELF blob use: %w", err)
		}
		return "", nil
	})
	if err != nil {
		return nil, false, err
	}
	return e, shared, nil
}
