package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
)

var _ lodestone.CredentialStore = (*DB)(nil)

func isUnique(err error) bool {
	_, ext, ok := sqliteCode(err)
	return ok && ext == sqlite3.CONSTRAINT_UNIQUE
}

const userColumns = `id, name, role, password_hash, created_at, updated_at, disabled_at`

func scanUser(s scanner) (*lodestone.User, error) {
	var u lodestone.User
	var role string
	var created, updated int64
	var disabled sql.NullInt64
	if err := s.Scan(&u.ID, &u.Name, &role, &u.PasswordHash, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	u.Role, _ = lodestone.ParseRole(role)
	u.CreatedAt, u.UpdatedAt = fromMS(created), fromMS(updated)
	if disabled.Valid {
		v := fromMS(disabled.Int64)
		u.DisabledAt = &v
	}
	return &u, nil
}

// CreateUser implements lodestone.CredentialStore.
func (db *DB) CreateUser(ctx context.Context, u *lodestone.User) error {
	return db.audited(ctx, "create user", "user.create", lodestone.AuditUser, "", func(tx *sql.Tx) (string, error) {
		return u.Name, db.createUser(ctx, tx, u)
	})
}

func (db *DB) createUser(ctx context.Context, tx *sql.Tx, u *lodestone.User) error {
	var disabled any
	if u.DisabledAt != nil {
		disabled = ms(*u.DisabledAt)
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO users (name, role, password_hash, created_at, updated_at, disabled_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, u.Name, u.Role.String(), u.PasswordHash, ms(u.CreatedAt),
		ms(u.UpdatedAt), disabled).Scan(&u.ID)
	if isUnique(err) {
		return lodestone.Errorf(lodestone.ECONFLICT, "user %q already exists", u.Name)
	} else if err != nil {
		return fmt.Errorf("sqlite: create user %q: %w", u.Name, err)
	}
	return nil
}

// FindUser implements lodestone.CredentialStore.
func (db *DB) FindUser(ctx context.Context, name string) (*lodestone.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find user %q: %w", name, err)
	}
	return u, nil
}

// FindUsers implements lodestone.CredentialStore.
func (db *DB) FindUsers(ctx context.Context) ([]*lodestone.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	var out []*lodestone.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return out, nil
}

// UpdateUser implements lodestone.CredentialStore.
func (db *DB) UpdateUser(ctx context.Context, u *lodestone.User) error {
	return db.audited(ctx, "update user", "user.update", lodestone.AuditUser, u.Name, func(tx *sql.Tx) (string, error) {
		var oldHash string
		err := tx.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, u.Name).Scan(&oldHash)
		if errors.Is(err, sql.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
		} else if err != nil {
			return "", fmt.Errorf("sqlite: update user %q: %w", u.Name, err)
		}
		var disabled any
		if u.DisabledAt != nil {
			disabled = ms(*u.DisabledAt)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, password_hash = ?, updated_at = ?, disabled_at = ?
			WHERE name = ?`, u.Role.String(), u.PasswordHash, ms(u.UpdatedAt), disabled, u.Name); err != nil {
			return "", fmt.Errorf("sqlite: update user %q: %w", u.Name, err)
		}
		q := `UPDATE sessions SET role = ? WHERE user_name = ? AND via = 'password'`
		args := []any{int(u.Role), u.Name}
		if u.DisabledAt != nil || oldHash != u.PasswordHash {
			q, args = `DELETE FROM sessions WHERE user_name = ? AND via = 'password'`, args[1:]
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return "", fmt.Errorf("sqlite: update the sessions of user %q: %w", u.Name, err)
		}
		return "", nil
	})
}

// DeleteUser implements lodestone.CredentialStore.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.audited(ctx, "delete user", "user.delete", lodestone.AuditUser, name, func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
		if err != nil {
			return "", fmt.Errorf("sqlite: delete user %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_name = ? AND via = 'password'`, name); err != nil {
			return "", fmt.Errorf("sqlite: end the sessions of user %q: %w", name, err)
		}
		return "", nil
	})
}

const tokenColumns = `id, kind, name, role, device_id, hint, hash, created_by, created_at, last_used_at, revoked_at`

func scanToken(s scanner) (*lodestone.Token, error) {
	var t lodestone.Token
	var kind, role string
	var device sql.NullString
	var created int64
	var used, revoked sql.NullInt64
	if err := s.Scan(&t.ID, &kind, &t.Name, &role, &device, &t.Hint, &t.Hash, &t.CreatedBy, &created, &used,
		&revoked); err != nil {
		return nil, err
	}
	t.Kind = lodestone.TokenKind(kind)
	t.Role, _ = lodestone.ParseRole(role)
	t.DeviceID = device.String
	t.CreatedAt = fromMS(created)
	if used.Valid {
		v := fromMS(used.Int64)
		t.LastUsedAt = &v
	}
	if revoked.Valid {
		v := fromMS(revoked.Int64)
		t.RevokedAt = &v
	}
	return &t, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateToken implements lodestone.CredentialStore.
func (db *DB) CreateToken(ctx context.Context, t *lodestone.Token) error {
	action, kind := auditsql.TokenAction(t.Kind, "create")
	return db.audited(ctx, "create token", action, kind, "", func(tx *sql.Tx) (string, error) {
		err := db.createToken(ctx, tx, t)
		return fmt.Sprint(t.ID), err
	})
}

func (db *DB) createToken(ctx context.Context, tx *sql.Tx, t *lodestone.Token) error {
	err := tx.QueryRowContext(ctx, `INSERT INTO tokens (kind, name, role, device_id, hint, hash, created_by,
		created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, string(t.Kind), t.Name, t.Role.String(),
		nullIfEmpty(t.DeviceID), t.Hint, t.Hash, t.CreatedBy, ms(t.CreatedAt)).Scan(&t.ID)
	if isUnique(err) {
		return lodestone.Errorf(lodestone.ECONFLICT, "token already exists")
	} else if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.Name, err)
	}
	return nil
}

// FindTokenByHash implements lodestone.CredentialStore.
func (db *DB) FindTokenByHash(ctx context.Context, hash string) (*lodestone.Token, error) {
	t, err := scanToken(db.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "token not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find token: %w", err)
	}
	return t, nil
}

// FindTokens implements lodestone.CredentialStore.
func (db *DB) FindTokens(ctx context.Context, f lodestone.TokenFilter) ([]*lodestone.Token, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE (? = '' OR kind = ?) AND (? = '' OR device_id = ?) ORDER BY id`,
		string(f.Kind), string(f.Kind), f.DeviceID, f.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	defer rows.Close()
	var out []*lodestone.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements lodestone.CredentialStore.
func (db *DB) RevokeToken(ctx context.Context, id int64, f lodestone.TokenFilter, at time.Time) error {
	action, kind := auditsql.TokenAction(f.Kind, "revoke")
	return db.audited(ctx, "revoke token", action, kind, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?)
			WHERE id = ? AND (? = '' OR kind = ?) AND (? = '' OR device_id = ?)`,
			ms(at), id, string(f.Kind), string(f.Kind), f.DeviceID, f.DeviceID)
		if err != nil {
			return "", fmt.Errorf("sqlite: revoke token %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "token not found")
		}
		return "", nil
	})
}

// TouchToken implements lodestone.CredentialStore.
func (db *DB) TouchToken(ctx context.Context, id int64, at time.Time) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if _, err := db.w.ExecContext(ctx, `UPDATE tokens SET last_used_at = ?
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, ms(at), id, ms(at)); err != nil {
		return fmt.Errorf("sqlite: record use of token %d: %w", id, err)
	}
	return nil
}
