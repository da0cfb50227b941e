package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
)

// Prefixes of lodestone's bearer secrets. A prefix tells at a glance (and to secret scanners) what a leaked
// string is, and lets the authenticator pick the check without trying each.
const (
	TokenPrefix     = "lst_" // API token
	DeviceKeyPrefix = "lsd_" // device key
)

// AuthConfig configures Authn.
type AuthConfig struct {
	Admin *BasicAuth // the primary admin (BASIC_AUTH_USER/BASIC_AUTH_PASS or the generated password)
	// Users is BASIC_AUTH_USERS in ferrite's format: "user:pass:role,..." (role admin, provisioner, else viewer).
	Users string
	// Store keeps managed users, API tokens and device keys; nil leaves only the configured accounts.
	Store lodestone.CredentialStore
	// OIDC, when set, switches user sign-in from Basic to bearer JWTs from that issuer (ferrite's Keycloak mode);
	// API tokens work in both modes.
	OIDC   *OIDC
	Logger *slog.Logger
	// BcryptCost hashes passwords; 0 means bcrypt.DefaultCost.
	BcryptCost int
	// MaxChecks bounds password hashes in flight (default: the number of CPUs, at least 2); MaxQueued bounds
	// requests waiting for one (default 64). Past both a request is answered 503 at once rather than queued.
	MaxChecks, MaxQueued int
}

// Authn is lodestone's Authenticator: Basic users (configured and managed), API tokens, device keys and, in OIDC
// mode, JWTs. Passwords are checked with bcrypt (constant time) in a bounded number of slots; a verified or
// refused credential is remembered briefly (under an HMAC with a per-process key) so a client that sends the same
// header on every request, or thousands of clients connecting at once with one, pay bcrypt once.
type Authn struct {
	cfg      AuthConfig
	log      *slog.Logger
	envUsers []envUser
	dummy    []byte // bcrypt hash compared against for unknown users, so timing does not reveal names

	key      []byte        // per-process HMAC key of the password caches: they hold no usable secret
	slots    chan struct{} // password hashes in flight
	queued   atomic.Int64  // requests waiting for a slot
	maxQueue int64
	checks   atomic.Uint64 // password checks run (tests, metrics)

	mu       sync.Mutex
	verified map[[sha256.Size]byte]cached    // HMAC(user NUL pass) -> principal
	refused  map[[sha256.Size]byte]time.Time // HMAC(user NUL pass) -> when it failed
	inflight map[[sha256.Size]byte]*check    // checks running, so identical concurrent requests share one
	tokens   map[string]cachedToken          // hash -> token
	unknown  map[string]time.Time            // hash -> when the store did not know it
	touched  map[int64]time.Time             // token id -> last time its use was written
	wg       sync.WaitGroup
	now      func() time.Time
}

// check is one password verification that concurrent requests with the same credentials wait for.
type check struct {
	done chan struct{}
	p    *lodestone.Principal
	err  error
}

type envUser struct {
	name string
	hash []byte
	role lodestone.Role
}

type cached struct {
	p   *lodestone.Principal
	exp time.Time
}

type cachedToken struct {
	t   *lodestone.Token
	exp time.Time
}

// How long a verified password or a looked-up token is trusted without asking the store again. Changes made
// through this replica take effect at once (Forget); other replicas see them within this time.
const (
	credentialTTL = 30 * time.Second
	refusedTTL    = 30 * time.Second // a wrong password repeated within this is refused without a hash
	tokenTTL      = 30 * time.Second
	maxCached     = 4096
	// touchEvery bounds last-used writes to one per token per minute per replica.
	touchEvery = time.Minute
)

// NewAuthn hashes the configured users and returns the authenticator.
func NewAuthn(cfg AuthConfig) (*Authn, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.MaxChecks <= 0 {
		cfg.MaxChecks = max(runtime.GOMAXPROCS(0), 2)
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 64
	}
	a := &Authn{cfg: cfg, log: cfg.Logger, key: make([]byte, 32), slots: make(chan struct{}, cfg.MaxChecks),
		maxQueue: int64(cfg.MaxQueued), verified: map[[sha256.Size]byte]cached{},
		refused: map[[sha256.Size]byte]time.Time{}, inflight: map[[sha256.Size]byte]*check{},
		tokens: map[string]cachedToken{}, unknown: map[string]time.Time{}, touched: map[int64]time.Time{}, now: time.Now}
	rand.Read(a.key)
	var err error
	if a.dummy, err = bcrypt.GenerateFromPassword([]byte("lodestone-dummy"), cfg.BcryptCost); err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	for _, u := range ParseUsers(cfg.Users) {
		h, err := bcrypt.GenerateFromPassword([]byte(u.Password), cfg.BcryptCost)
		if err != nil {
			return nil, fmt.Errorf("BASIC_AUTH_USERS: hash the password of %q: %w", u.Name, err)
		}
		a.envUsers = append(a.envUsers, envUser{name: u.Name, hash: h, role: u.Role})
	}
	return a, nil
}

// ConfiguredUser is one entry of BASIC_AUTH_USERS.
type ConfiguredUser struct {
	Name, Password string
	Role           lodestone.Role
}

// ParseUsers reads BASIC_AUTH_USERS exactly as ferrite does: entries split on ",", trimmed, split on ":"; entries
// with fewer than two parts are skipped; the third part is the role (admin or provisioner, case-insensitive),
// anything else or nothing means viewer. A password therefore cannot hold ":" or ",".
func ParseUsers(s string) []ConfiguredUser {
	var out []ConfiguredUser
	for _, e := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(e), ":")
		if len(parts) < 2 || parts[0] == "" {
			continue
		}
		role := lodestone.RoleViewer
		if len(parts) > 2 {
			switch strings.ToLower(parts[2]) {
			case "admin":
				role = lodestone.RoleAdmin
			case "provisioner":
				role = lodestone.RoleProvisioner
			}
		}
		out = append(out, ConfiguredUser{Name: parts[0], Password: parts[1], Role: role})
	}
	return out
}

// ConfiguredUsers returns the accounts from the environment: the primary admin first, then BASIC_AUTH_USERS.
func (a *Authn) ConfiguredUsers() []ConfiguredUser {
	var out []ConfiguredUser
	if a.cfg.Admin != nil {
		out = append(out, ConfiguredUser{Name: a.cfg.Admin.User(), Role: lodestone.RoleAdmin})
	}
	for _, u := range a.envUsers {
		out = append(out, ConfiguredUser{Name: u.name, Role: u.role})
	}
	return out
}

// IsConfigured reports whether name is an account from the environment, which the API cannot change.
func (a *Authn) IsConfigured(name string) bool {
	for _, u := range a.ConfiguredUsers() {
		if u.Name == name {
			return true
		}
	}
	return false
}

// Mode is "basic", "keycloak" or "oidc".
func (a *Authn) Mode() string {
	if a.cfg.OIDC != nil {
		return a.cfg.OIDC.mode()
	}
	return "basic"
}

// Challenge is the WWW-Authenticate value for a refused user request.
func (a *Authn) Challenge() string {
	if a.cfg.OIDC != nil {
		return `Bearer realm="lodestone"`
	}
	return `Basic realm="lodestone"`
}

// HashPassword hashes a password for a managed user.
func (a *Authn) HashPassword(pass string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), a.cfg.BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Forget drops every remembered credential, so a changed or deleted user or a revoked token stops working on
// this replica at once.
func (a *Authn) Forget() {
	a.mu.Lock()
	clear(a.verified)
	clear(a.refused)
	clear(a.tokens)
	a.mu.Unlock()
}

// PasswordChecks counts the password hashes computed since start; remembered credentials cost none.
func (a *Authn) PasswordChecks() uint64 { return a.checks.Load() }

// Close waits for last-used writes in flight.
func (a *Authn) Close() { a.wg.Wait() }

var errBadCredentials = lodestone.Errorf(lodestone.EUNAUTHORIZED, "invalid credentials")

// Authenticate implements Authenticator. A device key authenticates a device (no role); everything else is a
// person or an automation token with a role.
func (a *Authn) Authenticate(r *http.Request) (*lodestone.Principal, error) {
	if k := r.Header.Get("X-API-Key"); strings.HasPrefix(k, DeviceKeyPrefix) {
		return a.bearer(r.Context(), k)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return a.bearer(r.Context(), strings.TrimSpace(tok))
	}
	if _, _, ok := r.BasicAuth(); ok && a.cfg.OIDC == nil {
		return a.basic(r)
	}
	return nil, errBadCredentials
}

func (a *Authn) bearer(ctx context.Context, tok string) (*lodestone.Principal, error) {
	switch {
	case strings.HasPrefix(tok, TokenPrefix), strings.HasPrefix(tok, DeviceKeyPrefix):
		return a.token(ctx, tok)
	case a.cfg.OIDC != nil:
		return a.cfg.OIDC.Verify(ctx, tok)
	}
	return nil, errBadCredentials
}

// basic checks a user name and password. A verified pair is remembered for credentialTTL and a refused one for
// refusedTTL under an HMAC with a per-process key; identical requests arriving together share one check; and a
// check that will cost a hash passes the request's authGate (failure limits) and waits for one of a bounded
// number of slots.
func (a *Authn) basic(r *http.Request) (*lodestone.Principal, error) {
	user, pass, _ := r.BasicAuth()
	ctx := r.Context()
	g := gateFrom(ctx)
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte(user + "\x00" + pass))
	var key [sha256.Size]byte
	mac.Sum(key[:0])
	for {
		now := a.now()
		a.mu.Lock()
		if c, ok := a.verified[key]; ok && now.Before(c.exp) {
			a.mu.Unlock()
			return c.p, nil
		}
		if at, ok := a.refused[key]; ok && now.Sub(at) < refusedTTL {
			a.mu.Unlock()
			if err := g.repeated(user); err != nil {
				return nil, err
			}
			return nil, errBadCredentials
		}
		c, busy := a.inflight[key]
		if !busy {
			c = &check{done: make(chan struct{})}
			a.inflight[key] = c
			a.mu.Unlock()
			c.p, c.err = a.runCheck(r, g, user, pass)
			a.finish(key, c)
			return c.p, c.err
		}
		a.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded) ||
			c.err == errBusy || lodestone.ErrorCode(c.err) == codeRateLimited {
			// The check was not run, or its request went away: this request tries on its own account (its own
			// limits, its own Retry-After).
			continue
		}
		if lodestone.ErrorCode(c.err) == lodestone.EUNAUTHORIZED {
			if err := g.repeated(user); err != nil {
				return nil, err
			}
		}
		if c.err != nil {
			return nil, c.err
		}
		return c.p, nil
	}
}

// finish remembers a check's outcome and wakes the requests that waited for it.
func (a *Authn) finish(key [sha256.Size]byte, c *check) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inflight, key)
	close(c.done)
	switch {
	case c.err == nil:
		if len(a.verified) >= maxCached {
			clear(a.verified)
		}
		a.verified[key] = cached{p: c.p, exp: now.Add(credentialTTL)}
	case lodestone.ErrorCode(c.err) == lodestone.EUNAUTHORIZED:
		if len(a.refused) >= maxCached {
			clear(a.refused)
		}
		a.refused[key] = now
	}
}

var errBusy = lodestone.Errorf(lodestone.EUNAVAILABLE, "too many sign-ins are being checked; retry shortly")

// runCheck admits the check through the gate, waits for a slot and verifies the password.
func (a *Authn) runCheck(r *http.Request, g *authGate, user, pass string) (*lodestone.Principal, error) {
	done, err := g.admit(user)
	if err != nil {
		return nil, err
	}
	release, err := a.slot(r.Context())
	if err != nil {
		done(true)
		return nil, err
	}
	a.checks.Add(1)
	var p *lodestone.Principal
	if a.cfg.Admin != nil && user == a.cfg.Admin.User() {
		if a.cfg.Admin.Check(r) {
			p = &lodestone.Principal{Name: user, Role: lodestone.RoleAdmin}
		} else {
			err = errBadCredentials
		}
	} else {
		p, err = a.checkPassword(r.Context(), user, pass)
	}
	release()
	ok := err == nil
	done(ok || lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED) // a store failure is not the caller's
	if ok {
		g.signedIn(user)
	}
	return p, err
}

// slot waits for one of the bounded password-hash slots, or refuses at once when too many requests wait.
func (a *Authn) slot(ctx context.Context) (release func(), err error) {
	release = func() { <-a.slots }
	select {
	case a.slots <- struct{}{}:
		return release, nil
	default:
	}
	if a.queued.Add(1) > a.maxQueue {
		a.queued.Add(-1)
		return nil, errBusy
	}
	defer a.queued.Add(-1)
	select {
	case a.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkPassword runs bcrypt once whether or not the user exists.
func (a *Authn) checkPassword(ctx context.Context, user, pass string) (*lodestone.Principal, error) {
	for _, u := range a.envUsers {
		if u.name == user {
			if bcrypt.CompareHashAndPassword(u.hash, []byte(pass)) != nil {
				return nil, errBadCredentials
			}
			return &lodestone.Principal{Name: user, Role: u.role}, nil
		}
	}
	if a.cfg.Store != nil {
		u, err := a.cfg.Store.FindUser(ctx, user)
		if err == nil {
			if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pass)) != nil {
				return nil, errBadCredentials
			}
			if u.Disabled() {
				// Said only to someone who knows the password, so it tells a guesser nothing.
				return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "this account is disabled; ask an admin")
			}
			return &lodestone.Principal{Name: u.Name, Role: u.Role}, nil
		}
		if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return nil, err
		}
	}
	bcrypt.CompareHashAndPassword(a.dummy, []byte(pass))
	return nil, errBadCredentials
}

// HashToken is how a bearer secret is stored: the secret has 192 random bits, so a plain SHA-256 cannot be
// reversed and lets the store find it by an index.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a fresh secret with the given prefix and its hint (the prefix and 4 more characters).
func NewSecret(prefix string) (secret, hint string) {
	raw := make([]byte, 24)
	rand.Read(raw)
	secret = prefix + base64.RawURLEncoding.EncodeToString(raw)
	return secret, secret[:len(prefix)+4]
}

func (a *Authn) token(ctx context.Context, secret string) (*lodestone.Principal, error) {
	if a.cfg.Store == nil {
		return nil, errBadCredentials
	}
	hash := HashToken(secret)
	now := a.now()
	a.mu.Lock()
	c, ok := a.tokens[hash]
	at, unknown := a.unknown[hash]
	a.mu.Unlock()
	if unknown && now.Sub(at) < tokenTTL {
		return nil, errBadCredentials
	}
	t := c.t
	if !ok || !now.Before(c.exp) {
		var err error
		t, err = a.cfg.Store.FindTokenByHash(ctx, hash)
		if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
			// Secrets are random, so one unknown now is not created later: remembering it is safe, and a
			// client repeating a wrong key costs no lookup. Kept apart so a flood does not evict real tokens.
			a.mu.Lock()
			if len(a.unknown) >= maxCached {
				clear(a.unknown)
			}
			a.unknown[hash] = now
			a.mu.Unlock()
			return nil, errBadCredentials
		} else if err != nil {
			return nil, err
		}
		a.mu.Lock()
		if len(a.tokens) >= maxCached {
			clear(a.tokens)
		}
		a.tokens[hash] = cachedToken{t: t, exp: now.Add(tokenTTL)}
		a.mu.Unlock()
	}
	if !t.Active() {
		return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "credential revoked")
	}
	a.touch(t.ID, now)
	if t.Kind == lodestone.TokenDevice {
		return &lodestone.Principal{Name: t.DeviceID, DeviceID: t.DeviceID, Kind: lodestone.ActorDevice}, nil
	}
	return &lodestone.Principal{Name: "token:" + t.Name, Role: t.Role, Kind: lodestone.ActorToken, TokenID: t.ID}, nil
}

// touch records a token's use in the background, at most once per touchEvery, so that authentication stays a
// read.
func (a *Authn) touch(id int64, now time.Time) {
	a.mu.Lock()
	last, ok := a.touched[id]
	if ok && now.Sub(last) < touchEvery {
		a.mu.Unlock()
		return
	}
	if len(a.touched) >= maxCached {
		clear(a.touched)
	}
	a.touched[id] = now
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.cfg.Store.TouchToken(ctx, id, now); err != nil {
			a.log.Warn("could not record token use", "token_id", id, "err", err)
		}
	}()
}
