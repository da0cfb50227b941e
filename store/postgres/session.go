package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.SessionStore = (*DB)(nil)

// CreateSession implements lodestone.SessionStore.
func (db *DB) CreateSession(ctx context.Context, s *lodestone.Session) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO sessions (hash, user_name, role, via, created_at, last_seen,
		expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.Hash, s.UserName, int(s.Role), s.Via, ms(s.CreatedAt),
		ms(s.LastSeen), ms(s.ExpiresAt))
	if err != nil {
		return fmt.Errorf("postgres: create session for %q: %w", s.UserName, err)
	}
	return nil
}

// FindSession implements lodestone.SessionStore.
func (db *DB) FindSession(ctx context.Context, hash string) (*lodestone.Session, error) {
	var s lodestone.Session
	var role int
	var created, seen, expires int64
	err := db.pool.QueryRow(ctx, `SELECT hash, user_name, role, via, created_at, last_seen, expires_at
		FROM sessions WHERE hash = $1`, hash).Scan(&s.Hash, &s.UserName, &role, &s.Via, &created, &seen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "session not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find session: %w", err)
	}
	s.Role, s.CreatedAt, s.LastSeen, s.ExpiresAt = lodestone.Role(role), fromMS(created), fromMS(seen), fromMS(expires)
	return &s, nil
}

// TouchSession implements lodestone.SessionStore.
func (db *DB) TouchSession(ctx context.Context, hash string, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE sessions SET last_seen = greatest(last_seen, $1) WHERE hash = $2`,
		ms(at), hash)
	if err != nil {
		return fmt.Errorf("postgres: touch session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return lodestone.Errorf(lodestone.ENOTFOUND, "session not found")
	}
	return nil
}

// DeleteSession implements lodestone.SessionStore.
func (db *DB) DeleteSession(ctx context.Context, hash string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements lodestone.SessionStore.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1 OR last_seen < $2`, ms(now),
		ms(idleSince))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
