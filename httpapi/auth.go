package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
)

// adminPasswordSetting holds the bcrypt hash of the generated admin password.
const adminPasswordSetting = "admin_password_bcrypt"

// BasicAuth checks the one admin account that guards the read API until users and roles exist. Its password is
// either configured (BASIC_AUTH_PASS) or generated on first start and kept only as a bcrypt hash.
type BasicAuth struct {
	user       string
	configured [sha256.Size]byte // sha256 of the configured password; zero when generated
	hasConfig  bool
	bcryptHash []byte
	// verified caches sha256(user:password) of the last credential that passed bcrypt, so a client sending the
	// same header does not pay bcrypt on every request.
	verified atomic.Pointer[[sha256.Size]byte]
}

// NewBasicAuth sets up the admin account. With an empty pass it loads the generated password's hash from settings,
// or generates one and returns it in generated so that the caller prints it once.
func NewBasicAuth(ctx context.Context, settings lodestone.Settings, user, pass string) (a *BasicAuth,
	generated string, err error) {
	if user == "" {
		user = "admin"
	}
	a = &BasicAuth{user: user}
	if pass != "" {
		a.configured, a.hasConfig = sha256.Sum256([]byte(pass)), true
		return a, "", nil
	}
	hash, err := settings.Setting(ctx, adminPasswordSetting)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		raw := make([]byte, 18)
		rand.Read(raw)
		generated = base64.RawURLEncoding.EncodeToString(raw)
		h, err := bcrypt.GenerateFromPassword([]byte(generated), bcrypt.DefaultCost)
		if err != nil {
			return nil, "", fmt.Errorf("hash generated admin password: %w", err)
		}
		stored, err := settings.SetSettingIfAbsent(ctx, adminPasswordSetting, string(h))
		if err != nil {
			return nil, "", err
		}
		if !stored { // another replica generated one first
			generated = ""
			if hash, err = settings.Setting(ctx, adminPasswordSetting); err != nil {
				return nil, "", err
			}
		} else {
			hash = string(h)
		}
	} else if err != nil {
		return nil, "", err
	}
	a.bcryptHash = []byte(hash)
	return a, generated, nil
}

// User is the admin account name.
func (a *BasicAuth) User() string { return a.user }

// Check reports whether r carries the admin credentials.
func (a *BasicAuth) Check(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) == 1
	if a.hasConfig {
		sum := sha256.Sum256([]byte(pass))
		return subtle.ConstantTimeCompare(sum[:], a.configured[:]) == 1 && userOK
	}
	cred := sha256.Sum256([]byte(user + ":" + pass))
	if v := a.verified.Load(); v != nil && subtle.ConstantTimeCompare(cred[:], v[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(a.bcryptHash, []byte(pass)) != nil || !userOK {
		return false
	}
	a.verified.Store(&cred)
	return true
}

// APIKey guards ingest when INGEST_API_KEY is set.
type APIKey struct {
	sum [sha256.Size]byte
	set bool
}

// NewAPIKey returns a checker for key; an empty key leaves ingest open (ferrite's default).
func NewAPIKey(key string) *APIKey {
	if key == "" {
		return &APIKey{}
	}
	return &APIKey{sum: sha256.Sum256([]byte(key)), set: true}
}

// Enabled reports whether a key is required.
func (k *APIKey) Enabled() bool { return k != nil && k.set }

// Check compares the X-API-Key header in constant time.
func (k *APIKey) Check(r *http.Request) bool {
	if !k.Enabled() {
		return true
	}
	got := sha256.Sum256([]byte(r.Header.Get("X-API-Key")))
	return subtle.ConstantTimeCompare(got[:], k.sum[:]) == 1
}

// Authenticate implements Authenticator: the one admin account holds the admin role.
func (a *BasicAuth) Authenticate(r *http.Request) (*lodestone.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return nil, nil
	}
	if !a.Check(r) {
		return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "invalid credentials")
	}
	return &lodestone.Principal{Name: a.user, Role: lodestone.RoleAdmin}, nil
}
