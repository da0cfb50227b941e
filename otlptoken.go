package lodestone

import (
	"context"
	"time"
)

// OTLPToken is a detritus bearer token created through the API, beside the ones of the token file. Its secret is
// shown once at creation; the store keeps its SHA-256 (the secret is 192 random bits, so a slow hash would add
// nothing and the hash can be looked up by an index).
type OTLPToken struct {
	ID           int64
	Name         string // unique; the receiver's token id is "api/" + Name (rate-limit key, crash upload token_id)
	Project      string
	SourcePrefix string // matched against "<project>/<install_id>", as in the token file
	Hint         string // the first characters of the secret
	Hash         string // hex SHA-256 of the whole secret
	CreatedBy    string
	CreatedAt    time.Time
	RevokedAt    *time.Time
}

// OTLPTokenStore keeps API-created detritus tokens.
type OTLPTokenStore interface {
	// CreateOTLPToken stores t and sets its ID; a name or hash already stored is an ECONFLICT error.
	CreateOTLPToken(ctx context.Context, t *OTLPToken) error
	// FindOTLPTokenByHash returns the token, revoked or not, whose secret hashes to hash, or ENOTFOUND.
	FindOTLPTokenByHash(ctx context.Context, hash string) (*OTLPToken, error)
	// FindOTLPTokens lists every token, oldest first.
	FindOTLPTokens(ctx context.Context) ([]*OTLPToken, error)
	// RevokeOTLPToken marks the token revoked at at, or returns ENOTFOUND; a second revocation keeps the first time.
	RevokeOTLPToken(ctx context.Context, id int64, at time.Time) error
}
