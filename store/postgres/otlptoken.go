package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var (
	_ lodestone.OTLPTokenStore = (*DB)(nil)
	_ lodestone.LogScanner     = (*DB)(nil)
)

const otlpTokenCols = `id, name, project, source_prefix, hint, hash, created_by, created_at, revoked_at`

func scanOTLPToken(row pgx.Row) (*lodestone.OTLPToken, error) {
	var t lodestone.OTLPToken
	var created int64
	var revoked *int64
	if err := row.Scan(&t.ID, &t.Name, &t.Project, &t.SourcePrefix, &t.Hint, &t.Hash, &t.CreatedBy, &created,
		&revoked); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMS(created)
	if revoked != nil {
		at := fromMS(*revoked)
		t.RevokedAt = &at
	}
	return &t, nil
}

// CreateOTLPToken implements lodestone.OTLPTokenStore.
func (db *DB) CreateOTLPToken(ctx context.Context, t *lodestone.OTLPToken) error {
	return db.audited(ctx, "otlp_token create", "otlp_token.create", lodestone.AuditOTLPToken, "", func(tx pgx.Tx) (string, error) {
		err := tx.QueryRow(ctx, `INSERT INTO otlp_tokens (name, project, source_prefix, hint, hash, created_by,
			created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, t.Name, t.Project, t.SourcePrefix, t.Hint,
			t.Hash, t.CreatedBy, ms(t.CreatedAt)).Scan(&t.ID)
		if isUnique(err) {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "an OTLP token named %q already exists", t.Name)
		} else if err != nil {
			return "", fmt.Errorf("postgres: create OTLP token %q: %w", t.Name, err)
		}
		return fmt.Sprint(t.ID), nil
	})
}

// FindOTLPTokenByHash implements lodestone.OTLPTokenStore.
func (db *DB) FindOTLPTokenByHash(ctx context.Context, hash string) (*lodestone.OTLPToken, error) {
	t, err := scanOTLPToken(db.pool.QueryRow(ctx, `SELECT `+otlpTokenCols+` FROM otlp_tokens WHERE hash = $1`,
		hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "OTLP token not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find OTLP token: %w", err)
	}
	return t, nil
}

// FindOTLPTokens implements lodestone.OTLPTokenStore.
func (db *DB) FindOTLPTokens(ctx context.Context) ([]*lodestone.OTLPToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+otlpTokenCols+` FROM otlp_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list OTLP tokens: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.OTLPToken{}
	for rows.Next() {
		t, err := scanOTLPToken(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: scan OTLP token: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list OTLP tokens: %w", err)
	}
	return out, nil
}

// RevokeOTLPToken implements lodestone.OTLPTokenStore.
func (db *DB) RevokeOTLPToken(ctx context.Context, id int64, at time.Time) error {
	return db.audited(ctx, "otlp_token revoke", "otlp_token.revoke", lodestone.AuditOTLPToken, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `UPDATE otlp_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`,
			ms(at), id)
		if err != nil {
			return "", fmt.Errorf("postgres: revoke OTLP token %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "OTLP token not found")
		}
		return "", nil
	})
}

// ScanLogs implements lodestone.LogScanner: by primary key, so a scan of the whole table reads it once.
func (db *DB) ScanLogs(ctx context.Context, f lodestone.LogScan) ([]*lodestone.LogRecord, error) {
	var a args
	conds := []string{"x.id > " + a.add(f.AfterID)}
	if f.Project != "" {
		conds = append(conds, "s.project = "+a.add(f.Project))
	}
	if f.DeviceID != "" {
		conds = append(conds, "s.device_id = "+a.add(f.DeviceID))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "x.received_at >= "+a.add(ms(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "x.received_at < "+a.add(ms(f.Until)))
	}
	q := `SELECT x.id, s.project, s.device_id, x.time_ns, x.observed_ns, x.severity, x.severity_text, x.body,
		x.attributes, x.trace_id, x.span_id, x.event_name, x.flags, x.received_at
		FROM logs x JOIN log_sources s ON s.id = x.source_id` + where(conds) +
		` ORDER BY x.id LIMIT ` + a.add(lodestone.ClampLimit(f.Limit))
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: scan logs: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.LogRecord{}
	for rows.Next() {
		var r lodestone.LogRecord
		var t, obs, flags, recv int64
		if err := rows.Scan(&r.ID, &r.Project, &r.DeviceID, &t, &obs, &r.Severity, &r.SeverityText, &r.Body,
			&r.Attributes, &r.TraceID, &r.SpanID, &r.EventName, &flags, &recv); err != nil {
			return nil, fmt.Errorf("postgres: scan log: %w", err)
		}
		r.Time, r.ObservedTime = time.Unix(0, t).UTC(), time.Unix(0, obs).UTC()
		r.Flags, r.ReceivedAt = uint32(flags), fromMS(recv)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read logs: %w", err)
	}
	return out, nil
}
