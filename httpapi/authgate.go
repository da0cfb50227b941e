package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/lograte"
)

// authState is what the server keeps about failed and successful sign-ins, beside the per-address failure bucket
// (Server.authFailures).
type authState struct {
	userFailures *buckets        // per (address, user): one user's guesser does not lock the address's other users
	good         goodLogins      // (address, user) pairs that signed in recently
	failLog      lograte.Limiter // rate-limited WARN lines about refused credentials
}

// User failures share the address rate but allow fewer at once: a guesser of one account runs out well before
// the address does, and the failures refused by the user bucket are not checked and do not drain the address.
const (
	maxUserFailureBurst = 5
	goodLoginTTL        = 24 * time.Hour
	failLogEvery        = 10 * time.Second
)

// authGate admits password checks for one request. The authenticator calls it once it knows that a check will
// cost a hash (the credential is not cached), so failures are counted before the check and concurrent guesses
// cannot overdraw the limits.
type authGate struct {
	s       *Server
	w       http.ResponseWriter
	ip      string
	now     time.Time
	handled bool // the authenticator accounted for this request's failure itself
}

type gateKey struct{}

func withGate(ctx context.Context, g *authGate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

func gateFrom(ctx context.Context) *authGate {
	g, _ := ctx.Value(gateKey{}).(*authGate)
	return g
}

// admit reserves a failure for (address, user) and for the address before a password check. done(true) gives
// them back (the check passed, or was never run); done(false) keeps them. An address that ran out of failures
// still admits users who signed in from it recently, so a guesser behind a NAT does not lock out colleagues
// (each user still has its own bucket).
func (g *authGate) admit(user string) (done func(ok bool), err error) {
	if g == nil {
		return func(bool) {}, nil
	}
	g.handled = true
	st := &g.s.authState
	pair := pairKey(g.ip, user)
	undoUser, err := st.userFailures.reserve(g.w, pair, g.now)
	if err != nil {
		return nil, err
	}
	undoIP := func() {}
	if !st.good.has(pair, g.now) {
		if undoIP, err = g.s.authFailures.reserve(g.w, g.ip, g.now); err != nil {
			undoUser()
			return nil, err
		}
	}
	return func(ok bool) {
		if ok {
			undoUser()
			undoIP()
		}
	}, nil
}

// signedIn remembers that user passed a password check from this address.
func (g *authGate) signedIn(user string) {
	if g != nil {
		g.s.authState.good.add(pairKey(g.ip, user), g.now)
	}
}

// repeated accounts for a wrong password that was already checked (remembered, or shared with a concurrent
// request): it costs no hash, so it is counted against (address, user) only, never against the address. A
// client repeating a stale password thus locks out only its own user at that address.
func (g *authGate) repeated(user string) error {
	if g == nil {
		return nil
	}
	g.handled = true
	return g.s.authState.userFailures.take(g.w, pairKey(g.ip, user), g.now)
}

// pairKey keys an (address, user) pair; a long user name is hashed so that made-up names cannot make the
// buckets large.
func pairKey(ip, user string) string {
	if len(user) > 64 {
		sum := sha256.Sum256([]byte(user))
		user = hex.EncodeToString(sum[:16])
	}
	return ip + "\x00" + user
}

// goodLogins remembers (address, user) pairs that signed in, for goodLoginTTL.
type goodLogins struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (l *goodLogins) has(pair string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.m[pair]
	return ok && now.Sub(at) < goodLoginTTL
}

func (l *goodLogins) add(pair string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxBuckets {
		l.m = map[string]time.Time{}
	}
	l.m[pair] = now
}

// credentialLabel names what a request presented, without its secret: the user name of Basic credentials, the
// hint (prefix and four characters, as token listings show it) of a lodestone token, or only the kind.
func credentialLabel(r *http.Request) []any {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return []any{"credential", "api_key", "hint", hint(k)}
	}
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return []any{"credential", "bearer", "hint", hint(strings.TrimSpace(tok))}
	}
	if user, _, ok := r.BasicAuth(); ok {
		if len(user) > 64 {
			user = user[:64]
		}
		return []any{"credential", "basic", "user", fmt.Sprintf("%q", user)}
	}
	return []any{"credential", "other"}
}

// hint is the non-secret start of a lodestone token (what GET .../keys shows); other values get no hint.
func hint(secret string) string {
	for _, p := range []string{TokenPrefix, DeviceKeyPrefix, OTLPTokenPrefix} {
		if strings.HasPrefix(secret, p) && len(secret) >= len(p)+4 {
			return secret[:len(p)+4]
		}
	}
	return ""
}

// logFailure writes a rate-limited WARN line for a refused credential.
func (s *Server) logFailure(r *http.Request, ip, reason string, now time.Time) {
	attrs := append([]any{"ip", ip, "method", r.Method, "path", r.URL.Path, "reason", reason}, credentialLabel(r)...)
	s.authState.failLog.Log(s.log, slog.LevelWarn, now, "authentication failed", attrs...)
}

// SignIn checks a user name and password exactly as the API checks Basic credentials, behind the same failure
// limits (per address, and per address and user), for the console's sign-in form. A wrong password is an
// EUNAUTHORIZED error; past the limits the error is a rate limit and w carries its Retry-After.
func (s *Server) SignIn(w http.ResponseWriter, r *http.Request, user, pass string) (*lodestone.Principal, error) {
	now := time.Now()
	ip := ClientIP(r.Context())
	if ip == "" {
		ip = s.clientIP(r)
	}
	g := &authGate{s: s, w: w, ip: ip, now: now}
	req := r.Clone(withGate(r.Context(), g))
	req.Header = http.Header{}
	req.SetBasicAuth(user, pass)
	p, err := s.authenticate(req)
	if err != nil && lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED {
		return nil, err
	}
	if err == nil && p != nil && p.DeviceID == "" {
		return p, nil
	}
	reason := "invalid credentials"
	if err != nil {
		reason = lodestone.ErrorMessage(err)
	}
	if lerr := s.refuse(w, req, g, reason); lerr != nil {
		return nil, lerr
	}
	if err != nil {
		return nil, err // "invalid credentials", or a disabled account's reason (given only for its password)
	}
	return nil, errBadCredentials
}
