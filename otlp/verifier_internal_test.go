package otlp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// testPHC is detritus' test vector for "secret-token".
const testPHC = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BDY2yZMghVRfzM/ZnWJRYnbYdyXpxGgbqWqx3PdMCfg"

type tokenDB interface {
	lodestone.OTLPTokenStore
	Close() error
}

var tokenBackends = []struct {
	name string
	open func(t *testing.T) tokenDB
}{
	{"sqlite", func(t *testing.T) tokenDB {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
	{"postgres", func(t *testing.T) tokenDB {
		db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

func storeAPIToken(t *testing.T, db lodestone.OTLPTokenStore, name, secret string) *lodestone.OTLPToken {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	tok := &lodestone.OTLPToken{Name: name, Project: "p", SourcePrefix: "p/", Hint: secret[:8],
		Hash: hex.EncodeToString(sum[:]), CreatedAt: time.Now().UTC()}
	if err := db.CreateOTLPToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// fileToken is a token-file entry for "secret-token" with cheap Argon2 parameters, so the tests stay fast under
// the race detector.
func fileToken(t *testing.T, id string) *Token {
	t.Helper()
	salt := []byte("somesalt")
	h := phc{id: true, m: 64, t: 1, p: 1, salt: salt, sum: argon2.IDKey([]byte("secret-token"), salt, 1, 64, 1, 32)}
	return &Token{ID: id, Project: "p", SourcePrefix: "p/", hash: h}
}

// within fails the test unless f returns within a generous bound: the point is "not behind the queue", which
// here would be forever, since the Argon2 slots are held.
func within(t *testing.T, what string, f func() (*Token, error)) (*Token, error) {
	t.Helper()
	type res struct {
		t   *Token
		err error
	}
	ch := make(chan res, 1)
	go func() { tok, err := f(); ch <- res{tok, err} }()
	select {
	case r := <-ch:
		return r.t, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s waited behind the unknown values", what)
		return nil, nil
	}
}

// Hundreds of unknown bearer values in flight do not hold up a valid token: an API token, an "<id>.<secret>"
// value and a cached token are answered while every Argon2 slot is taken; a bare uncached value is refused at
// once as busy (retryable) instead of queueing; and the unknown values cost a bounded number of Argon2 runs.
func TestValidTokenDoesNotWaitBehindUnknownOnes(t *testing.T) {
	for _, tc := range tokenBackends {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			api := APITokenPrefix + "valid-api-secret-0123456789"
			storeAPIToken(t, db, "gw", api)
			a, b := fileToken(t, "alpha"), fileToken(t, "beta")
			v := NewVerifier([]*Token{a, b})
			v.UseStore(NewTokenStore(db))
			ctx := context.Background()
			if tok, _ := v.Check(ctx, "secret-token"); tok != a {
				t.Fatal("the file token does not verify")
			}
			ran := v.checks.Load()

			v.sem <- struct{}{}
			v.sem <- struct{}{} // every Argon2 slot of the scan is taken from now on
			var wg sync.WaitGroup
			var mu sync.Mutex
			busy := 0
			for i := range 400 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok, err := v.Check(ctx, fmt.Sprintf("random-%d", i))
					if tok != nil {
						t.Errorf("random value %d accepted", i)
					}
					if err == ErrBusy {
						mu.Lock()
						busy++
						mu.Unlock()
					}
				}()
			}
			waitFor(t, 30*time.Second, "the Argon2 queue did not fill and refuse the rest", func() bool {
				mu.Lock()
				n := busy
				mu.Unlock()
				return n == 400-maxArgon2Queue && v.queued.Load() == maxArgon2Queue
			})

			if tok, err := within(t, "an API token", func() (*Token, error) { return v.Check(ctx, api) }); tok == nil ||
				tok.ID != "api/gw" || err != nil {
				t.Fatalf("API token: %v, %v", tok, err)
			}
			if tok, err := within(t, "an <id>.<secret> value", func() (*Token, error) {
				return v.Check(ctx, "beta.secret-token")
			}); tok != b || err != nil {
				t.Fatalf("beta.secret-token: %v, %v", tok, err)
			}
			if tok, _ := within(t, "a cached token", func() (*Token, error) { return v.Check(ctx, "secret-token") }); tok != a {
				t.Fatal("cached token refused")
			}
			_, err := within(t, "a bare new value", func() (*Token, error) { return v.Check(ctx, "another") })
			if err != ErrBusy {
				t.Fatalf("a value past the queue: %v, want ErrBusy", err)
			}
			<-v.sem
			<-v.sem
			wg.Wait()
			// Only the queued values ran Argon2 (two entries each), plus the one "<id>.<secret>" check.
			if n := v.checks.Load() - ran; n > 2*maxArgon2Queue+1 {
				t.Fatalf("%d Argon2 runs for 400 unknown values, want at most %d", n, 2*maxArgon2Queue+1)
			}
			// A value refused as busy was not remembered as bad.
			if tok, err := v.Check(ctx, "alpha.secret-token"); tok != a || err != nil {
				t.Fatalf("after the flood: %v, %v", tok, err)
			}
		})
	}
}

// A token revoked through the process's TokenStore is refused at once by every verifier using it, though its
// acceptance is cached; another process, without the notice, keeps its bounded cache delay.
func TestRevokedAPITokenIsRefusedAtOnce(t *testing.T) {
	for _, tc := range tokenBackends {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			shared := NewTokenStore(db)
			v := NewVerifier(nil)
			v.UseStore(shared)
			other := NewVerifier(nil) // another replica over the same database
			other.UseStore(db)
			c := newClock()
			other.now = c.now
			secret := APITokenPrefix + "to-be-revoked-0123456789ab"
			tok := storeAPIToken(t, db, "old", secret)
			for _, ver := range []*Verifier{v, other} {
				if got := ver.Verify(secret); got == nil {
					t.Fatal("a fresh token refused")
				}
			}
			if err := shared.RevokeOTLPToken(context.Background(), tok.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			if got := v.Verify(secret); got != nil {
				t.Fatal("a revoked token still works on the process that revoked it")
			}
			if other.Verify(secret) == nil {
				t.Fatal("another replica dropped its cache without a notice")
			}
			c.add(apiTTL + time.Second)
			if other.Verify(secret) != nil {
				t.Fatal("another replica accepts a revoked token past apiTTL")
			}
		})
	}
}

// A refused bearer value is logged at WARN with the address and a non-secret label, never the value; a burst
// of refusals is one line.
func TestRefusedTokensAreLoggedWithoutSecrets(t *testing.T) {
	var buf bytes.Buffer
	v := NewVerifier([]*Token{fileToken(t, "alpha")})
	v.SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	c := newClock()
	v.now = c.now
	v.Refused("192.0.2.9:5555", "logs", APITokenPrefix+"abcdSECRETPART", "invalid bearer token")
	for range 20 {
		v.Refused("192.0.2.9:5555", "logs", "alpha.TOPSECRET", "invalid bearer token")
	}
	c.add(time.Hour)
	v.Refused("[2001:db8::1]:443", "crashes", "bare-SECRET-value", "invalid bearer token")
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "ip=192.0.2.9") ||
		!strings.Contains(lines[0], "hint=ldt_abcd") || !strings.Contains(lines[1], "fingerprint=") ||
		!strings.Contains(lines[1], "ip=2001:db8::1") || !strings.Contains(lines[1], "suppressed_since_last=20") {
		t.Fatalf("log:\n%s", out)
	}
	for _, s := range []string{"SECRET", "TOPSECRET"} {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds a secret:\n%s", out)
		}
	}
}

// When the verifier is too busy to check a bearer value, the receiver answers 503 with Retry-After (an exporter
// retries it), not 401 (which an exporter drops), and a valid token keeps working meanwhile.
func TestBusyVerifierAnswersUnavailable(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	tf, err := ParseTokenFile([]byte("[[token]]\nid = \"a\"\nsecret = \"" + testPHC +
		"\"\nproject = \"p\"\nsource_prefix = \"p/\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Tokens: tf}, Deps{Logs: db, Crashes: db, Blobs: blobs, Tokens: db,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	post := func(token string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/logs", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("unknown-1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown value: %d", resp.StatusCode)
	}
	api := APITokenPrefix + "valid-api-secret-0123456789"
	storeAPIToken(t, db, "gw", api)
	s.verifier.sem <- struct{}{}
	s.verifier.sem <- struct{}{}
	s.verifier.queued.Store(maxArgon2Queue) // as if sixteen values were waiting
	defer func() { s.verifier.queued.Store(0); <-s.verifier.sem; <-s.verifier.sem }()
	resp := post("unknown-2")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("busy: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := post(api); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid API token while busy: %d", resp.StatusCode)
	}
}
