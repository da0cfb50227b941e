package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
)

var _ lodestone.CredentialStore = (*DB)(nil)

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// isForeignKey reports a foreign_key_violation: a row named by its key was deleted by a transaction that
// committed after this one read it.
func isForeignKey(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}

const userColumns = `id, name, role, password_hash, created_at, updated_at, disabled_at`

func scanUser(row pgx.Row) (*lodestone.User, error) {
	var u lodestone.User
	var role string
	var created, updated int64
	var disabled *int64
	if err := row.Scan(&u.ID, &u.Name, &role, &u.PasswordHash, &created, &updated, &disabled); err != nil {
		return nil, err
	}
	u.Role, _ = lodestone.ParseRole(role)
	u.CreatedAt, u.UpdatedAt = fromMS(created), fromMS(updated)
	if disabled != nil {
		v := fromMS(*disabled)
		u.DisabledAt = &v
	}
	return &u, nil
}

// CreateUser implements lodestone.CredentialStore.
func (db *DB) CreateUser(ctx context.Context, u *lodestone.User) error {
	return db.audited(ctx, "user create", "user.create", lodestone.AuditUser, "", func(tx pgx.Tx) (string, error) {
		var disabled *int64
		if u.DisabledAt != nil {
			v := ms(*u.DisabledAt)
			disabled = &v
		}
		err := tx.QueryRow(ctx, `INSERT INTO users (name, role, password_hash, created_at, updated_at, disabled_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, u.Name, u.Role.String(), u.PasswordHash, ms(u.CreatedAt),
			ms(u.UpdatedAt), disabled).Scan(&u.ID)
		if isUnique(err) {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "user %q already exists", u.Name)
		} else if err != nil {
			return "", fmt.Errorf("postgres: create user %q: %w", u.Name, err)
		}
		return u.Name, nil
	})
}

// FindUser implements lodestone.CredentialStore.
func (db *DB) FindUser(ctx context.Context, name string) (*lodestone.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find user %q: %w", name, err)
	}
	return u, nil
}

// FindUsers implements lodestone.CredentialStore.
func (db *DB) FindUsers(ctx context.Context) ([]*lodestone.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	defer rows.Close()
	var out []*lodestone.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return out, nil
}

// UpdateUser implements lodestone.CredentialStore.
func (db *DB) UpdateUser(ctx context.Context, u *lodestone.User) error {
	return db.audited(ctx, "user update", "user.update", lodestone.AuditUser, u.Name, func(tx pgx.Tx) (string, error) {
		var oldHash string
		err := tx.QueryRow(ctx, `SELECT password_hash FROM users WHERE name = $1 FOR UPDATE`, u.Name).Scan(&oldHash)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
		} else if err != nil {
			return "", fmt.Errorf("postgres: update user %q: %w", u.Name, err)
		}
		var disabled *int64
		if u.DisabledAt != nil {
			v := ms(*u.DisabledAt)
			disabled = &v
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET role = $1, password_hash = $2, updated_at = $3, disabled_at = $4
			WHERE name = $5`, u.Role.String(), u.PasswordHash, ms(u.UpdatedAt), disabled, u.Name); err != nil {
			return "", fmt.Errorf("postgres: update user %q: %w", u.Name, err)
		}
		q := `UPDATE sessions SET role = $2 WHERE user_name = $1 AND via = 'password'`
		args := []any{u.Name, int(u.Role)}
		if u.DisabledAt != nil || oldHash != u.PasswordHash {
			q, args = `DELETE FROM sessions WHERE user_name = $1 AND via = 'password'`, args[:1]
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return "", fmt.Errorf("postgres: update the sessions of user %q: %w", u.Name, err)
		}
		return "", nil
	})
}

// DeleteUser implements lodestone.CredentialStore.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.audited(ctx, "user delete", "user.delete", lodestone.AuditUser, name, func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
		if err != nil {
			return "", fmt.Errorf("postgres: delete user %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "user not found")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_name = $1 AND via = 'password'`, name); err != nil {
			return "", fmt.Errorf("postgres: end the sessions of user %q: %w", name, err)
		}
		return "", nil
	})
}

const tokenColumns = `id, kind, name, role, device_id, hint, hash, created_by, created_at, last_used_at, revoked_at`

func scanToken(row pgx.Row) (*lodestone.Token, error) {
	var t lodestone.Token
	var kind, role string
	var device *string
	var created int64
	var used, revoked *int64
	if err := row.Scan(&t.ID, &kind, &t.Name, &role, &device, &t.Hint, &t.Hash, &t.CreatedBy, &created, &used,
		&revoked); err != nil {
		return nil, err
	}
	t.Kind = lodestone.TokenKind(kind)
	t.Role, _ = lodestone.ParseRole(role)
	if device != nil {
		t.DeviceID = *device
	}
	t.CreatedAt = fromMS(created)
	if used != nil {
		v := fromMS(*used)
		t.LastUsedAt = &v
	}
	if revoked != nil {
		v := fromMS(*revoked)
		t.RevokedAt = &v
	}
	return &t, nil
}

// CreateToken implements lodestone.CredentialStore.
func (db *DB) CreateToken(ctx context.Context, t *lodestone.Token) error {
	action, kind := auditsql.TokenAction(t.Kind, "create")
	return db.audited(ctx, action, action, kind, "", func(tx pgx.Tx) (string, error) {
		var device *string
		if t.DeviceID != "" {
			device = &t.DeviceID
		}
		err := tx.QueryRow(ctx, `INSERT INTO tokens (kind, name, role, device_id, hint, hash, created_by,
			created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, string(t.Kind), t.Name, t.Role.String(),
			device, t.Hint, t.Hash, t.CreatedBy, ms(t.CreatedAt)).Scan(&t.ID)
		if isUnique(err) {
			return "", lodestone.Errorf(lodestone.ECONFLICT, "token already exists")
		} else if err != nil {
			return "", fmt.Errorf("postgres: create token %q: %w", t.Name, err)
		}
		return fmt.Sprint(t.ID), nil
	})
}

// FindTokenByHash implements lodestone.CredentialStore.
func (db *DB) FindTokenByHash(ctx context.Context, hash string) (*lodestone.Token, error) {
	t, err := scanToken(db.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "token not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find token: %w", err)
	}
	return t, nil
}

// FindTokens implements lodestone.CredentialStore.
func (db *DB) FindTokens(ctx context.Context, f lodestone.TokenFilter) ([]*lodestone.Token, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR device_id = $2) ORDER BY id`, string(f.Kind), f.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", err)
	}
	defer rows.Close()
	var out []*lodestone.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements lodestone.CredentialStore.
func (db *DB) RevokeToken(ctx context.Context, id int64, f lodestone.TokenFilter, at time.Time) error {
	action, kind := auditsql.TokenAction(f.Kind, "revoke")
	return db.audited(ctx, action, action, kind, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, $1)
			WHERE id = $2 AND ($3 = '' OR kind = $3) AND ($4 = '' OR device_id = $4)`,
			ms(at), id, string(f.Kind), f.DeviceID)
		if err != nil {
			return "", fmt.Errorf("postgres: revoke token %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return "", lodestone.Errorf(lodestone.ENOTFOUND, "token not found")
		}
		return "", nil
	})
}

// TouchToken implements lodestone.CredentialStore.
func (db *DB) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if _, err := db.pool.Exec(ctx, `UPDATE tokens SET last_used_at = $1
		WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, ms(at), id); err != nil {
		return fmt.Errorf("postgres: record use of token %d: %w", id, err)
	}
	return nil
}
