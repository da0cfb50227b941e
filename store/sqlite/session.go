package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.SessionStore = (*DB)(nil)

// CreateSession implements lodestone.SessionStore.
func (db *DB) CreateSession(ctx context.Context, s *lodestone.Session) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	_, err := db.w.ExecContext(ctx, `INSERT INTO sessions (hash, user_name, role, via, created_at, last_seen,
		expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, s.Hash, s.UserName, int(s.Role), s.Via, ms(s.CreatedAt),
		ms(s.LastSeen), ms(s.ExpiresAt))
	if err != nil {
		return fmt.Errorf("sqlite: create session for %q: %w", s.UserName, err)
	}
	return nil
}

// FindSession implements lodestone.SessionStore.
func (db *DB) FindSession(ctx context.Context, hash string) (*lodestone.Session, error) {
	var s lodestone.Session
	var role int
	var created, seen, expires int64
	err := db.r.QueryRowContext(ctx, `SELECT hash, user_name, role, via, created_at, last_seen, expires_at
		FROM sessions WHERE hash = ?`, hash).Scan(&s.Hash, &s.UserName, &role, &s.Via, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "session not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find session: %w", err)
	}
	s.Role, s.CreatedAt, s.LastSeen, s.ExpiresAt = lodestone.Role(role), fromMS(created), fromMS(seen), fromMS(expires)
	return &s, nil
}

// TouchSession implements lodestone.SessionStore.
func (db *DB) TouchSession(ctx context.Context, hash string, at time.Time) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	res, err := db.w.ExecContext(ctx, `UPDATE sessions SET last_seen = max(last_seen, ?) WHERE hash = ?`, ms(at), hash)
	if err != nil {
		return fmt.Errorf("sqlite: touch session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return lodestone.Errorf(lodestone.ENOTFOUND, "session not found")
	}
	return nil
}

// DeleteSession implements lodestone.SessionStore.
func (db *DB) DeleteSession(ctx context.Context, hash string) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if _, err := db.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements lodestone.SessionStore.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	res, err := db.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR last_seen < ?`, ms(now),
		ms(idleSince))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
