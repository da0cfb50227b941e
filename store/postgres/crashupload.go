package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.CrashUploadStore = (*DB)(nil)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateCrashUpload implements lodestone.CrashUploadStore.
func (db *DB) CreateCrashUpload(ctx context.Context, u *lodestone.CrashUpload) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin crash upload: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	err = tx.QueryRow(ctx, `INSERT INTO crash_uploads (project, install_id, platform, version, kind,
		crash_time, metadata, dump_sha256, dump_size, dump_encoding, dedup, token_id, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		u.Project, u.InstallID, u.Platform, u.Version, u.Kind, ms(u.Timestamp), u.Metadata, u.Dump.SHA256,
		u.Dump.Size, u.DumpEncoding, b2i(u.Dedup), u.TokenID, ms(u.ReceivedAt)).Scan(&u.ID)
	if err != nil {
		return fmt.Errorf("postgres: insert crash upload: %w", err)
	}
	for _, a := range u.Attachments {
		if _, err := tx.Exec(ctx, `INSERT INTO crash_attachments (upload_id, key, content_type, sha256,
			size, content_encoding, dedup) VALUES ($1, $2, $3, $4, $5, $6, $7)`, u.ID, a.Key, a.ContentType,
			a.Blob.SHA256, a.Blob.Size, a.ContentEncoding, b2i(a.Dedup)); err != nil {
			return fmt.Errorf("postgres: insert crash attachment: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit crash upload: %w", err)
	}
	return nil
}

// FindCrashUploads implements lodestone.CrashUploadStore.
func (db *DB) FindCrashUploads(ctx context.Context, f lodestone.CrashUploadFilter) ([]*lodestone.CrashUpload, error) {
	var a args
	var conds []string
	if f.ID != 0 {
		conds = append(conds, "id = "+a.add(f.ID))
	}
	if f.Project != "" {
		conds = append(conds, "project = "+a.add(f.Project))
	}
	if f.InstallID != "" {
		conds = append(conds, "install_id = "+a.add(f.InstallID))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "received_at >= "+a.add(ms(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "received_at < "+a.add(ms(f.Until)))
	}
	q := `SELECT id, project, install_id, platform, version, kind, crash_time, metadata, dump_sha256, dump_size,
		dump_encoding, dedup, token_id, received_at FROM crash_uploads` + where(conds) +
		` ORDER BY received_at DESC, id DESC LIMIT ` + a.add(lodestone.ClampLimit(f.Limit)) +
		` OFFSET ` + a.add(max(f.Offset, 0))
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: query crash uploads: %w", err)
	}
	ups := []*lodestone.CrashUpload{}
	byID := map[int64]*lodestone.CrashUpload{}
	var ids []int64
	for rows.Next() {
		var u lodestone.CrashUpload
		var ct, recv int64
		var dedup int
		if err := rows.Scan(&u.ID, &u.Project, &u.InstallID, &u.Platform, &u.Version, &u.Kind, &ct, &u.Metadata,
			&u.Dump.SHA256, &u.Dump.Size, &u.DumpEncoding, &dedup, &u.TokenID, &recv); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: scan crash upload: %w", err)
		}
		u.Timestamp, u.ReceivedAt, u.Dedup = fromMS(ct), fromMS(recv), dedup != 0
		ups = append(ups, &u)
		byID[u.ID] = &u
		ids = append(ids, u.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read crash uploads: %w", err)
	}
	if len(ids) == 0 {
		return ups, nil
	}
	arows, err := db.pool.Query(ctx, `SELECT upload_id, key, content_type, sha256, size, content_encoding, dedup
		FROM crash_attachments WHERE upload_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: query crash attachments: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id int64
		var at lodestone.CrashAttachment
		var dedup int
		if err := arows.Scan(&id, &at.Key, &at.ContentType, &at.Blob.SHA256, &at.Blob.Size, &at.ContentEncoding,
			&dedup); err != nil {
			return nil, fmt.Errorf("postgres: scan crash attachment: %w", err)
		}
		at.Dedup = dedup != 0
		byID[id].Attachments = append(byID[id].Attachments, at)
	}
	if err := arows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read crash attachments: %w", err)
	}
	return ups, nil
}

// DeleteCrashUploadsBefore implements lodestone.CrashUploadStore.
func (db *DB) DeleteCrashUploadsBefore(ctx context.Context, cutoff time.Time) (int64, []string, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: begin crash purge: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, `SELECT dump_sha256 FROM crash_uploads WHERE received_at < $1
		UNION SELECT a.sha256 FROM crash_attachments a JOIN crash_uploads u ON u.id = a.upload_id
		WHERE u.received_at < $1`, ms(cutoff))
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: find expired crash blobs: %w", err)
	}
	shas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: read expired crash blobs: %w", err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM crash_uploads WHERE received_at < $1`, ms(cutoff))
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: delete expired crash uploads: %w", err)
	}
	ref, err := referenced(ctx, tx, shas)
	if err != nil {
		return 0, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, fmt.Errorf("postgres: commit crash purge: %w", err)
	}
	n := tag.RowsAffected()
	var orphans []string
	for _, s := range shas {
		if !ref[s] {
			orphans = append(orphans, s)
		}
	}
	return n, orphans, nil
}

// CrashBlobReferenced implements lodestone.CrashUploadStore.
func (db *DB) CrashBlobReferenced(ctx context.Context, shas []string) (map[string]bool, error) {
	return referenced(ctx, db.pool, shas)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func referenced(ctx context.Context, q querier, shas []string) (map[string]bool, error) {
	ref := make(map[string]bool, len(shas))
	if len(shas) == 0 {
		return ref, nil
	}
	rows, err := q.Query(ctx, `SELECT dump_sha256 FROM crash_uploads WHERE dump_sha256 = ANY($1)
		UNION SELECT sha256 FROM crash_attachments WHERE sha256 = ANY($1)`, shas)
	if err != nil {
		return nil, fmt.Errorf("postgres: find referenced crash blobs: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: read referenced crash blobs: %w", err)
	}
	for _, s := range got {
		ref[s] = true
	}
	return ref, nil
}
