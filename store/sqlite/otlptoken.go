package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var (
	_ lodestone.OTLPTokenStore = (*DB)(nil)
	_ lodestone.LogScanner     = (*DB)(nil)
)

const otlpTokenCols = `id, name, project, source_prefix, hint, hash, created_by, created_at, revoked_at`

func scanOTLPToken(row interface{ Scan(...any) error }) (*lodestone.OTLPToken, error) {
	var t lodestone.OTLPToken
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &t.Project, &t.SourcePrefix, &t.Hint, &t.Hash, &t.CreatedBy, &created,
		&revoked); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMS(created)
	if revoked.Valid {
		at := fromMS(revoked.Int64)
		t.RevokedAt = &at
	}
	return &t, nil
}

// CreateOTLPToken implements lodestone.OTLPTokenStore.
func (db *DB) CreateOTLPToken(ctx context.Context, t *lodestone.OTLPToken) error {
	return db.audited(ctx, "otlp_token create", "otlp_token.create", lodestone.AuditOTLPToken, "", func(tx *sql.Tx) (string, error) {
		err := tx.QueryRowContext(ctx, `INSERT INTO otlp_tokens (name, project, source_prefix, hint, hash,
			created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, t.Name, t.Project, t.SourcePrefix,
			t.Hint, t.Hash, t.CreatedBy, ms(t.CreatedAt)).Scan(&t.ID)
		if isUnique(err) {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "an OTLP token named %q already exists", t.Name)
		} else if err != nil {
			return "", fmt.Errorf("sqlite: create OTLP token %q: %w", t.Name, err)
		}
		return fmt.Sprint(t.ID), nil
	})
}

// FindOTLPTokenByHash implements lodestone.OTLPTokenStore.
func (db *DB) FindOTLPTokenByHash(ctx context.Context, hash string) (*lodestone.OTLPToken, error) {
	t, err := scanOTLPToken(db.r.QueryRowContext(ctx, `SELECT `+otlpTokenCols+` FROM otlp_tokens WHERE hash = ?`,
		hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "OTLP token not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find OTLP token: %w", err)
	}
	return t, nil
}

// FindOTLPTokens implements lodestone.OTLPTokenStore.
func (db *DB) FindOTLPTokens(ctx context.Context) ([]*lodestone.OTLPToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+otlpTokenCols+` FROM otlp_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list OTLP tokens: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.OTLPToken{}
	for rows.Next() {
		t, err := scanOTLPToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan OTLP token: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list OTLP tokens: %w", err)
	}
	return out, nil
}

// RevokeOTLPToken implements lodestone.OTLPTokenStore.
func (db *DB) RevokeOTLPToken(ctx context.Context, id int64, at time.Time) error {
	return db.audited(ctx, "otlp_token revoke", "otlp_token.revoke", lodestone.AuditOTLPToken, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `UPDATE otlp_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`,
			ms(at), id)
		if err != nil {
			return "", fmt.Errorf("sqlite: revoke OTLP token %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "OTLP token not found")
		}
		return "", nil
	})
}

// ScanLogs implements lodestone.LogScanner: by primary key, so a scan of the whole table reads it once.
func (db *DB) ScanLogs(ctx context.Context, f lodestone.LogScan) ([]*lodestone.LogRecord, error) {
	q := `SELECT x.id, s.project, s.device_id, x.time_ns, x.observed_ns, x.severity, x.severity_text, x.body,
		x.attributes, x.trace_id, x.span_id, x.event_name, x.flags, x.received_at
		FROM logs x JOIN log_sources s ON s.id = x.source_id WHERE x.id > ?`
	args := []any{f.AfterID}
	if f.Project != "" {
		q += ` AND s.project = ?`
		args = append(args, f.Project)
	}
	if f.DeviceID != "" {
		q += ` AND s.device_id = ?`
		args = append(args, f.DeviceID)
	}
	if !f.Since.IsZero() {
		q += ` AND x.received_at >= ?`
		args = append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND x.received_at < ?`
		args = append(args, ms(f.Until))
	}
	q += ` ORDER BY x.id LIMIT ?`
	args = append(args, lodestone.ClampLimit(f.Limit))
	rows, err := db.r.QueryContext(ctx, q, args...)
	return collect(rows, true, err, "logs", func(rows *sql.Rows) (*lodestone.LogRecord, error) {
		var r lodestone.LogRecord
		var t, obs, flags, recv int64
		err := rows.Scan(&r.ID, &r.Project, &r.DeviceID, &t, &obs, &r.Severity, &r.SeverityText, &r.Body,
			&r.Attributes, &r.TraceID, &r.SpanID, &r.EventName, &flags, &recv)
		r.Time, r.ObservedTime = time.Unix(0, t).UTC(), time.Unix(0, obs).UTC()
		r.Flags, r.ReceivedAt = uint32(flags), fromMS(recv)
		return &r, err
	})
}
