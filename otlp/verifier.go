package otlp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/lograte"
)

// Verifier finds the token a bearer value belongs to. detritus runs Argon2 against every configured token on
// every request; Verifier runs it once per distinct presented value: results are cached under a keyed hash of the
// value (HMAC with a per-process key, so the cache holds no secret and its lookups reveal nothing about one), a
// failure is remembered for a minute, and Argon2 work is bounded: two runs at a time and a short queue, past
// which a value is answered ErrBusy at once rather than queued behind others.
//
// So that a valid token does not wait behind a flood of unknown values, tokens are found in this order: a cached
// answer; an API-created token (ldt_…, one indexed lookup, no Argon2); a value of the form "<token id>.<secret>",
// which is checked against that one entry in a lane of its own; and only then the scan of every entry.
type Verifier struct {
	tokens []*Token
	byID   map[string]*Token
	key    []byte
	sem    chan struct{} // Argon2 runs of the full scan
	prio   chan struct{} // Argon2 runs of "<id>.<secret>" values
	queued atomic.Int64  // requests waiting for sem
	prioQ  atomic.Int64  // requests waiting for prio
	api    lodestone.OTLPTokenStore
	log    *slog.Logger
	checks atomic.Uint64 // Argon2 runs (tests)

	mu       sync.Mutex
	good     map[[32]byte]goodEntry
	bad      map[[32]byte]badEntry
	inflight map[[32]byte]chan struct{} // verifications running, so concurrent requests with one value wait
	revoked  map[int64]time.Time        // API tokens revoked through this process, by store id
	failLog  lograte.Limiter
	now      func() time.Time
}

type goodEntry struct {
	tok *Token
	at  time.Time
	ttl time.Duration
}

type badEntry struct {
	at  time.Time
	ttl time.Duration
}

const (
	goodTTL   = 10 * time.Minute
	badTTL    = time.Minute
	cacheSize = 10000
	// apiTTL bounds how long an API-created token is trusted (or refused) without asking the store again: a
	// token just created, or one revoked on another replica, takes effect within it. A revocation through this
	// process (TokenStore) takes effect at once.
	apiTTL = 10 * time.Second
	// maxArgon2Queue is how many values may wait for an Argon2 run; more are refused with ErrBusy.
	maxArgon2Queue = 16
	failLogEvery   = 10 * time.Second
)

// ErrBusy is returned when too many bearer values wait for verification; the request may be retried.
var ErrBusy = errors.New("too many bearer tokens are being verified")

// APITokenPrefix starts the secrets of tokens created through lodestone's API. Such a secret is identified by its
// SHA-256 in one indexed lookup, never by running Argon2 against the token file's entries.
const APITokenPrefix = "ldt_"

// UseStore makes the verifier also accept API-created tokens kept in store. When store is a TokenStore, a
// revocation made through it is applied at once.
func (v *Verifier) UseStore(store lodestone.OTLPTokenStore) {
	v.api = store
	if ts, ok := store.(*TokenStore); ok {
		ts.subscribe(v)
	}
}

// SetLogger sets where refused tokens are logged (default slog.Default).
func (v *Verifier) SetLogger(l *slog.Logger) { v.log = l }

// NewVerifier returns a verifier over tokens.
func NewVerifier(tokens []*Token) *Verifier {
	key := make([]byte, 32)
	rand.Read(key)
	v := &Verifier{failLog: lograte.Limiter{Every: failLogEvery}, tokens: tokens, byID: map[string]*Token{}, key: key, sem: make(chan struct{}, 2),
		prio: make(chan struct{}, 1), log: slog.Default(), good: map[[32]byte]goodEntry{},
		bad: map[[32]byte]badEntry{}, inflight: map[[32]byte]chan struct{}{}, revoked: map[int64]time.Time{},
		now: time.Now}
	for _, t := range tokens {
		if _, dup := v.byID[t.ID]; !dup {
			v.byID[t.ID] = t
		}
	}
	return v
}

// Verify returns the token whose secret is presented, or nil (also when the verifier is busy).
func (v *Verifier) Verify(presented string) *Token {
	t, _ := v.Check(context.Background(), presented)
	return t
}

// Check returns the token whose secret is presented, nil for an unknown value, or ErrBusy when the value would
// have to wait behind too many others (nothing is remembered about it then).
func (v *Verifier) Check(ctx context.Context, presented string) (*Token, error) {
	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(presented))
	var k [32]byte
	mac.Sum(k[:0])
	for {
		now := v.now()
		v.mu.Lock()
		if e, ok := v.good[k]; ok && now.Sub(e.at) < e.ttl {
			_, gone := v.revoked[e.tok.apiID]
			v.mu.Unlock()
			if gone && e.tok.apiID != 0 {
				return nil, nil
			}
			return e.tok, nil
		}
		if e, ok := v.bad[k]; ok && now.Sub(e.at) < e.ttl {
			v.mu.Unlock()
			return nil, nil
		}
		wait, busy := v.inflight[k]
		if !busy {
			v.inflight[k] = make(chan struct{})
			v.mu.Unlock()
			break
		}
		v.mu.Unlock()
		select {
		case <-wait: // the running verification fills the cache
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	now := v.now()
	found, ttl, failTTL, err := v.find(ctx, presented)

	v.mu.Lock()
	defer v.mu.Unlock()
	close(v.inflight[k])
	delete(v.inflight, k)
	switch {
	case err != nil: // busy or gone: nothing learnt about the value
	case found != nil:
		if _, gone := v.revoked[found.apiID]; gone && found.apiID != 0 {
			return nil, nil // revoked while it was being looked up
		}
		if len(v.good) >= cacheSize {
			clear(v.good)
		}
		v.good[k] = goodEntry{found, now, ttl}
	default:
		if len(v.bad) >= cacheSize {
			clear(v.bad)
		}
		v.bad[k] = badEntry{now, failTTL}
	}
	return found, err
}

// find looks a value up, cheapest way first.
func (v *Verifier) find(ctx context.Context, presented string) (found *Token, ttl, failTTL time.Duration, err error) {
	if v.api != nil && strings.HasPrefix(presented, APITokenPrefix) {
		return v.lookupAPI(ctx, presented), apiTTL, apiTTL, nil
	}
	if id, secret, ok := strings.Cut(presented, "."); ok {
		if t := v.byID[id]; t != nil {
			if err := acquire(ctx, v.prio, &v.prioQ); err != nil {
				return nil, 0, 0, err
			}
			v.checks.Add(1)
			match := t.hash.verify(secret)
			<-v.prio
			if match {
				return t, goodTTL, badTTL, nil
			}
		}
	}
	if err := acquire(ctx, v.sem, &v.queued); err != nil {
		return nil, 0, 0, err
	}
	defer func() { <-v.sem }()
	for _, t := range v.tokens {
		v.checks.Add(1)
		if t.hash.verify(presented) {
			return t, goodTTL, badTTL, nil
		}
	}
	return nil, goodTTL, badTTL, nil
}

// acquire takes a slot of sem, waiting only while fewer than maxArgon2Queue others wait (counted in queued).
func acquire(ctx context.Context, sem chan struct{}, queued *atomic.Int64) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	if queued.Add(1) > maxArgon2Queue {
		queued.Add(-1)
		return ErrBusy
	}
	defer queued.Add(-1)
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookupAPI finds an API-created token by the SHA-256 of the presented secret. A store that cannot answer
// refuses the token (for apiTTL) rather than letting it through.
func (v *Verifier) lookupAPI(ctx context.Context, presented string) *Token {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	sum := sha256.Sum256([]byte(presented))
	t, err := v.api.FindOTLPTokenByHash(ctx, hex.EncodeToString(sum[:]))
	if err != nil || t.RevokedAt != nil {
		return nil
	}
	return &Token{ID: "api/" + t.Name, Project: t.Project, SourcePrefix: t.SourcePrefix, apiID: t.ID}
}

// revoke refuses the API token with store id id from now on, on this verifier.
func (v *Verifier) revoke(id int64) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, e := range v.good {
		if e.tok.apiID == id {
			delete(v.good, k)
		}
	}
	// Kept until a lookup that started before the revocation can no longer be answered from the cache.
	for rid, at := range v.revoked {
		if now.Sub(at) > 2*apiTTL {
			delete(v.revoked, rid)
		}
	}
	v.revoked[id] = now
}

// Refused logs a refused bearer value at WARN (rate-limited: one line per interval with the number left out). It
// names the value by what is not secret: the hint of an API token, the token id of an "<id>.<secret>" value, or
// else a fingerprint (keyed hash) that only tells repeated values apart within this process.
func (v *Verifier) Refused(remote, endpoint, presented, reason string) {
	attrs := []any{"ip", remoteIP(remote), "endpoint", endpoint, "reason", reason}
	switch id, _, ok := strings.Cut(presented, "."); {
	case strings.HasPrefix(presented, APITokenPrefix) && len(presented) >= len(APITokenPrefix)+4:
		attrs = append(attrs, "hint", presented[:len(APITokenPrefix)+4])
	case ok && v.byID[id] != nil:
		attrs = append(attrs, "token_id", id)
	case presented != "":
		mac := hmac.New(sha256.New, v.key)
		mac.Write([]byte(presented))
		attrs = append(attrs, "fingerprint", hex.EncodeToString(mac.Sum(nil)[:6]))
	}
	v.failLog.Log(v.log, slog.LevelWarn, v.now(), "otlp authentication failed", attrs...)
}

func remoteIP(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

// TokenStore wraps the store of API-created tokens so that a revocation made through it is applied at once by
// every Verifier of this process that uses it (the main API and the OTLP receiver share one). Other processes
// learn of the revocation from the store, within apiTTL.
type TokenStore struct {
	lodestone.OTLPTokenStore
	mu   sync.Mutex
	subs []*Verifier
}

// NewTokenStore wraps store.
func NewTokenStore(store lodestone.OTLPTokenStore) *TokenStore {
	return &TokenStore{OTLPTokenStore: store}
}

func (s *TokenStore) subscribe(v *Verifier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, v)
}

// RevokeOTLPToken revokes in the store, then on every subscribed verifier.
func (s *TokenStore) RevokeOTLPToken(ctx context.Context, id int64, at time.Time) error {
	if err := s.OTLPTokenStore.RevokeOTLPToken(ctx, id, at); err != nil {
		return err
	}
	s.mu.Lock()
	subs := append([]*Verifier(nil), s.subs...)
	s.mu.Unlock()
	for _, v := range subs {
		v.revoke(id)
	}
	return nil
}
