package lodestone

import (
	"context"
	"time"
)

// User is a person who signs in with a name and password (HTTP Basic). Users from the environment
// (BASIC_AUTH_USER, BASIC_AUTH_USERS) are not stored; these are the ones an admin manages through the API.
type User struct {
	ID           int64
	Name         string
	Role         Role
	PasswordHash string // bcrypt; the password itself is never stored
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// DisabledAt is set while the user is disabled: kept, with their history, but refused at sign-in.
	DisabledAt *time.Time
}

// Disabled reports whether u may not sign in.
func (u *User) Disabled() bool { return u.DisabledAt != nil }

// TokenKind tells API tokens from device keys; both are bearer secrets stored only as a hash.
type TokenKind string

const (
	TokenAPI    TokenKind = "api"    // automation: a role, no device
	TokenDevice TokenKind = "device" // one device's ingest key: a device, no role
)

// Token is a stored credential. Its secret is shown once at creation; the store keeps only Hash.
type Token struct {
	ID         int64
	Kind       TokenKind
	Name       string
	Role       Role   // API tokens; RoleNone for device keys
	DeviceID   string // device keys: the device_id it authenticates
	Hint       string // the first characters of the secret, so a listing tells tokens apart
	Hash       string // hex SHA-256 of the whole secret
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Active reports whether the token may still be used.
func (t *Token) Active() bool { return t != nil && t.RevokedAt == nil }

// TokenFilter selects tokens; the zero value selects every token of every kind.
type TokenFilter struct {
	Kind     TokenKind // empty: any
	DeviceID string    // empty: any
}

// CredentialStore keeps users, API tokens and device keys. Authorisation rules live above it, in httpapi.
type CredentialStore interface {
	// CreateUser stores u and sets its ID; a taken name is an ECONFLICT error.
	CreateUser(ctx context.Context, u *User) error
	// FindUser returns the user with the given name, or an ENOTFOUND error.
	FindUser(ctx context.Context, name string) (*User, error)
	// FindUsers lists users by name.
	FindUsers(ctx context.Context) ([]*User, error)
	// UpdateUser replaces the role, password hash, disabled time and update time of the user named u.Name, or
	// returns ENOTFOUND. In the same transaction it brings the user's password console sessions (Session.Via
	// "password") in line: a new password or disabling ends them, a new role applies to them at once.
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser removes a user and ends their password console sessions, or returns ENOTFOUND.
	DeleteUser(ctx context.Context, name string) error

	// CreateToken stores t and sets its ID; a hash already stored is an ECONFLICT error.
	CreateToken(ctx context.Context, t *Token) error
	// FindTokenByHash returns the token, revoked or not, whose secret hashes to hash, or an ENOTFOUND error.
	FindTokenByHash(ctx context.Context, hash string) (*Token, error)
	// FindTokens lists the tokens f selects, oldest first.
	FindTokens(ctx context.Context, f TokenFilter) ([]*Token, error)
	// RevokeToken marks the token with the given id revoked at at, if f also selects it; otherwise it returns
	// ENOTFOUND. Revoking a revoked token keeps the first revocation time.
	RevokeToken(ctx context.Context, id int64, f TokenFilter, at time.Time) error
	// TouchToken records a use of the token; last-used times never move back.
	TouchToken(ctx context.Context, id int64, at time.Time) error
}
