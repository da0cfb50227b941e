package httpapi_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// parallel sends n requests at once and counts the answers by status.
func (e *authEnv) parallel(n int, req func(i int) answer) map[int]int {
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := req(i)
			mu.Lock()
			got[a.status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return got
}

func addUser(t *testing.T, e *authEnv, name, pass, role string) {
	t.Helper()
	e.do("POST", "/admin/users", asAdmin, map[string]any{"name": name, "password": pass, "role": role}).must(t, 201)
}

// Concurrent wrong passwords from one address reserve their failure before the hash runs: 429s appear and the
// number of hashes stays within the bursts, for one user and for many.
func TestConcurrentWrongPasswordsAreLimited(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e := newFerriteEnv(t, tc.open(t), authOpts{})
			addUser(t, e, "sam", "sam-pass-1", "viewer")
			before := e.authn.PasswordChecks()
			got := e.parallel(300, func(i int) answer {
				return e.do("GET", "/devices", basic("sam", fmt.Sprintf("guess-%d", i)), nil)
			})
			if got[401]+got[429] != 300 || got[429] == 0 {
				t.Fatalf("one user: statuses %v, want only 401 and 429, some 429", got)
			}
			if n := e.authn.PasswordChecks() - before; n > 5 || int(n) != got[401] {
				t.Fatalf("one user: %d hashes for %d refusals, want at most the (address, user) burst of 5", n, got[401])
			}

			// The same wrong password 300 times at once costs one hash.
			before = e.authn.PasswordChecks()
			got = e.parallel(300, func(int) answer { return e.do("GET", "/devices", basic("vic", "same-guess"), nil) })
			if got[401]+got[429] != 300 {
				t.Fatalf("one password: statuses %v", got)
			}
			if n := e.authn.PasswordChecks() - before; n != 1 {
				t.Fatalf("one password: %d hashes, want 1", n)
			}

			before = e.authn.PasswordChecks()
			got = e.parallel(300, func(i int) answer {
				return e.do("GET", "/devices", basic(fmt.Sprintf("user%d", i), "guess"), nil)
			})
			if got[401]+got[429] != 300 || got[429] == 0 {
				t.Fatalf("many users: statuses %v", got)
			}
			if n := e.authn.PasswordChecks() - before; n > 20 {
				t.Fatalf("many users: %d hashes, want at most the address burst of 20", n)
			}
		})
	}
}

// A Basic credential costs one hash however many requests carry it, even all at once (2,000 SSE clients); a
// changed password invalidates it at once.
func TestBasicCredentialIsVerifiedOnce(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e := newFerriteEnv(t, tc.open(t), authOpts{})
			addUser(t, e, "sam", "sam-pass-1", "admin")
			sam := basic("sam", "sam-pass-1")
			before := e.authn.PasswordChecks()
			got := e.parallel(200, func(int) answer { return e.do("GET", "/devices", sam, nil) })
			for range 20 {
				e.do("GET", "/devices", sam, nil).must(t, 200)
			}
			if got[200] != 200 {
				t.Fatalf("statuses %v", got)
			}
			if n := e.authn.PasswordChecks() - before; n != 1 {
				t.Fatalf("%d password hashes for 220 requests, want 1", n)
			}
			e.do("PUT", "/admin/users/sam", asAdmin, map[string]any{"password": "sam-pass-2"}).must(t, 200)
			e.do("GET", "/devices", sam, nil).must(t, 401)
			e.do("GET", "/devices", basic("sam", "sam-pass-2"), nil).must(t, 200)
			e.do("PUT", "/admin/users/sam", asAdmin, map[string]any{"role": "viewer"}).must(t, 200)
			e.do("GET", "/admin/users", basic("sam", "sam-pass-2"), nil).must(t, 403) // the role change too
			e.do("DELETE", "/admin/users/sam", asAdmin, nil).must(t, 204)
			e.do("GET", "/devices", basic("sam", "sam-pass-2"), nil).must(t, 401)
		})
	}
}

// A guesser behind a NAT does not lock out that NAT's other users or devices: one user's guesses exhaust only
// that (address, user); once the whole address is exhausted, valid device keys and API tokens still pass, and so
// do users who signed in from it before.
func TestLockedOutAddressKeepsValidCredentials(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e := newFerriteEnv(t, tc.open(t), authOpts{users: ferriteUsers})
			key := e.do("POST", "/devices/test-device/keys", asAdmin, map[string]any{"name": "k"}).must(t, 201).
				body["secret"].(string)
			tok := e.do("POST", "/admin/tokens", asAdmin, map[string]any{"name": "ci", "role": "viewer"}).
				must(t, 201).body["secret"].(string)
			e.do("GET", "/devices", asProvisioner, nil).must(t, 200) // pat signs in from this address

			// Guessing admin's password locks only admin at this address.
			got := e.parallel(50, func(i int) answer {
				return e.do("GET", "/devices", basic("admin", fmt.Sprintf("guess-%d", i)), nil)
			})
			if got[429] == 0 {
				t.Fatalf("guesses: %v", got)
			}
			e.authn.Forget() // admin's right password was remembered; now it has to be checked, and may not be
			e.do("GET", "/devices", asAdmin, nil).must(t, 429)
			e.do("GET", "/devices", asViewer, nil).must(t, 200) // vic's first sign-in from here

			// Spraying many users exhausts the address.
			for i := range 40 {
				e.do("GET", "/devices", basic(fmt.Sprintf("user%d", i), "guess"), nil)
			}
			e.do("GET", "/devices", basic("nobody", "guess"), nil).must(t, 429)
			e.do("POST", "/ingest/chunks", apiKey("lsd_forged-key-000000"), v("V1")).must(t, 429)

			e.authn.Forget() // so the next password really is checked again
			e.do("GET", "/devices", asProvisioner, nil).must(t, 200)
			e.do("POST", "/ingest/chunks", apiKey(key), v("V1")).must(t, 200)
			e.do("POST", "/ingest/chunks", bearer(key), v("V1")).must(t, 200)
			e.do("GET", "/devices", bearer(tok), nil).must(t, 200)
		})
	}
}

// A refused credential is logged at WARN with who and from where, never with the secret, and a burst of
// refusals is one line, not one per request.
func TestAuthFailuresAreLoggedWithoutSecrets(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := newFerriteEnv(t, openSQLite(t), authOpts{users: ferriteUsers, log: log})
	e.do("GET", "/devices", basic("vic", "hunter2-secret"), nil).must(t, 401)
	for i := range 30 {
		e.do("GET", "/devices", basic(fmt.Sprintf("u%d", i), "other-secret"), nil)
	}
	e.do("POST", "/ingest/chunks", apiKey("lsd_ABCDsecretpart"), v("V1"))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Count(out, "authentication failed")
	if lines != 1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, `user="\"vic\""`) ||
		!strings.Contains(out, "ip=127.0.0.1") {
		t.Fatalf("want one WARN line naming vic and the address, got:\n%s", out)
	}
	for _, secret := range []string{"hunter2", "other-secret", "secretpart"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds a secret %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// An OTLP token revoked through the API is refused at once by the receiver of the same process (they share an
// otlp.TokenStore, as cmd/lodestone wires them), although the receiver had cached it as valid.
func TestRevokedOTLPTokenIsRefusedAtOnce(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			shared := otlp.NewTokenStore(db.(lodestone.OTLPTokenStore))
			e := newFerriteEnv(t, db, authOpts{otlpTokens: shared})
			receiver := otlp.NewVerifier(nil)
			receiver.UseStore(shared)
			a := e.do("POST", "/admin/otlp-tokens", asAdmin, map[string]any{"name": "gw", "project": "p"}).must(t, 201)
			secret := a.body["secret"].(string)
			id := int(a.body["token"].(map[string]any)["id"].(float64))
			if receiver.Verify(secret) == nil {
				t.Fatal("a new token is refused")
			}
			e.do("DELETE", "/admin/otlp-tokens/"+itoa(id), asAdmin, nil).must(t, 204)
			if receiver.Verify(secret) != nil {
				t.Fatal("a revoked token still works on the replica that revoked it")
			}
		})
	}
}
