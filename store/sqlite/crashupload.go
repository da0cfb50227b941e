package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.CrashUploadStore = (*DB)(nil)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// crashUploadIDFloorKey is the setting that keeps the largest crash upload id retention has deleted while it was
// the table's largest ("<table>.id_floor", as lodestone copy expects).
const crashUploadIDFloorKey = "crash_uploads.id_floor"

// CreateCrashUpload implements lodestone.CrashUploadStore.
func (db *DB) CreateCrashUpload(ctx context.Context, u *lodestone.CrashUpload) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.stmts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "store is closed")
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin crash upload: %w", err)
	}
	defer tx.Rollback()
	// The id follows the largest one ever handed out, kept in settings when retention deletes the table's top:
	// SQLite alone would reuse it, and an old link /crashes/{id} would show a newer crash.
	err = tx.QueryRowContext(ctx, `INSERT INTO crash_uploads (id, project, install_id, platform, version, kind,
		crash_time, metadata, dump_sha256, dump_size, dump_encoding, dedup, token_id, received_at)
		VALUES (max(coalesce((SELECT max(id) FROM crash_uploads), 0),
			coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = '`+crashUploadIDFloorKey+`'), 0)) + 1,
			?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Project, u.InstallID, u.Platform, u.Version, u.Kind, ms(u.Timestamp), u.Metadata, u.Dump.SHA256,
		u.Dump.Size, u.DumpEncoding, b2i(u.Dedup), u.TokenID, ms(u.ReceivedAt)).Scan(&u.ID)
	if err != nil {
		return fmt.Errorf("sqlite: insert crash upload: %w", err)
	}
	for _, a := range u.Attachments {
		if _, err := tx.ExecContext(ctx, `INSERT INTO crash_attachments (upload_id, key, content_type, sha256,
			size, content_encoding, dedup) VALUES (?, ?, ?, ?, ?, ?, ?)`, u.ID, a.Key, a.ContentType,
			a.Blob.SHA256, a.Blob.Size, a.ContentEncoding, b2i(a.Dedup)); err != nil {
			return fmt.Errorf("sqlite: insert crash attachment: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit crash upload: %w", err)
	}
	return nil
}

// FindCrashUploads implements lodestone.CrashUploadStore.
func (db *DB) FindCrashUploads(ctx context.Context, f lodestone.CrashUploadFilter) ([]*lodestone.CrashUpload, error) {
	var where []string
	var args []any
	if f.ID != 0 {
		where = append(where, "id = ?")
		args = append(args, f.ID)
	}
	if f.Project != "" {
		where = append(where, "project = ?")
		args = append(args, f.Project)
	}
	if f.InstallID != "" {
		where = append(where, "install_id = ?")
		args = append(args, f.InstallID)
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, ms(f.Until))
	}
	q := `SELECT id, project, install_id, platform, version, kind, crash_time, metadata, dump_sha256, dump_size,
		dump_encoding, dedup, token_id, received_at FROM crash_uploads`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY received_at DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0))
	rows, err := db.r.QueryContext(ctx, q, args...)
	ups, err := collect(rows, true, err, "crash uploads", func(rows *sql.Rows) (*lodestone.CrashUpload, error) {
		var u lodestone.CrashUpload
		var ct, recv int64
		var dedup int
		err := rows.Scan(&u.ID, &u.Project, &u.InstallID, &u.Platform, &u.Version, &u.Kind, &ct, &u.Metadata,
			&u.Dump.SHA256, &u.Dump.Size, &u.DumpEncoding, &dedup, &u.TokenID, &recv)
		u.Timestamp, u.ReceivedAt, u.Dedup = fromMS(ct), fromMS(recv), dedup != 0
		return &u, err
	})
	if err != nil || len(ups) == 0 {
		return ups, err
	}
	byID := make(map[int64]*lodestone.CrashUpload, len(ups))
	ids := make([]string, len(ups))
	for i, u := range ups {
		byID[u.ID] = u
		ids[i] = fmt.Sprint(u.ID)
	}
	arows, err := db.r.QueryContext(ctx, `SELECT upload_id, key, content_type, sha256, size, content_encoding, dedup
		FROM crash_attachments WHERE upload_id IN (`+strings.Join(ids, ",")+`) ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query crash attachments: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id int64
		var a lodestone.CrashAttachment
		var dedup int
		if err := arows.Scan(&id, &a.Key, &a.ContentType, &a.Blob.SHA256, &a.Blob.Size, &a.ContentEncoding,
			&dedup); err != nil {
			return nil, fmt.Errorf("sqlite: scan crash attachment: %w", err)
		}
		a.Dedup = dedup != 0
		byID[id].Attachments = append(byID[id].Attachments, a)
	}
	if err := arows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read crash attachments: %w", err)
	}
	return ups, nil
}

// DeleteCrashUploadsBefore implements lodestone.CrashUploadStore.
func (db *DB) DeleteCrashUploadsBefore(ctx context.Context, cutoff time.Time) (int64, []string, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: begin crash purge: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT dump_sha256 FROM crash_uploads WHERE received_at < ?1
		UNION SELECT a.sha256 FROM crash_attachments a JOIN crash_uploads u ON u.id = a.upload_id
		WHERE u.received_at < ?1`, ms(cutoff))
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: find expired crash blobs: %w", err)
	}
	var shas []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return 0, nil, fmt.Errorf("sqlite: scan expired crash blob: %w", err)
		}
		shas = append(shas, s)
	}
	rows.Close()
	var top int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM crash_uploads`).Scan(&top); err != nil {
		return 0, nil, fmt.Errorf("sqlite: crash upload ids: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM crash_uploads WHERE received_at < ?`, ms(cutoff))
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: delete expired crash uploads: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value)
		SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM crash_uploads WHERE id = ?2)
		ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), ?2)`,
		crashUploadIDFloorKey, top); err != nil {
		return 0, nil, fmt.Errorf("sqlite: keep the crash upload id floor: %w", err)
	}
	ref, err := blobsReferenced(ctx, tx, shas)
	if err != nil {
		return 0, nil, err
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, fmt.Errorf("sqlite: commit crash purge: %w", err)
	}
	n, _ := res.RowsAffected()
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
	return blobsReferenced(ctx, db.r, shas)
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func blobsReferenced(ctx context.Context, q queryer, shas []string) (map[string]bool, error) {
	ref := make(map[string]bool, len(shas))
	for len(shas) > 0 {
		n := min(len(shas), 400)
		part := shas[:n]
		shas = shas[n:]
		args := make([]any, 0, 2*n)
		for _, s := range part {
			args = append(args, s)
		}
		args = append(args, args...)
		ph := strings.TrimSuffix(strings.Repeat("?,", n), ",")
		rows, err := q.QueryContext(ctx, `SELECT dump_sha256 FROM crash_uploads WHERE dump_sha256 IN (`+ph+`)
			UNION SELECT sha256 FROM crash_attachments WHERE sha256 IN (`+ph+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: find referenced crash blobs: %w", err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: scan referenced crash blob: %w", err)
			}
			ref[s] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: read referenced crash blobs: %w", err)
		}
	}
	return ref, nil
}
