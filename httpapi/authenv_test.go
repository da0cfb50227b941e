package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// authEnv is a server with the full authenticator (configured users, managed users, tokens, device keys) on a
// real SQLite store.
type authEnv struct {
	t     *testing.T
	srv   *httptest.Server
	db    *sqlite.DB
	authn *httpapi.Authn
	api   *httpapi.Server
}

type authOpts struct {
	users  string // BASIC_AUTH_USERS
	apiKey string // INGEST_API_KEY
	cfg    httpapi.Config
	oidc   *httpapi.OIDC
	log    *slog.Logger // nil: discard
	// otlpTokens serves /admin/otlp-tokens in newFerriteEnv; nil: that env keeps none.
	otlpTokens lodestone.OTLPTokenStore
}

func newAuthEnv(t *testing.T, o authOpts) *authEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: o.users, Store: db, OIDC: o.oidc,
		Logger: log, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	w := ingest.NewWriter(db, ingest.WriterConfig{}, log)
	svc := ingest.NewService(w, ingest.Config{}, log)
	otaSvc := ota.NewService(db, db, ota.Config{Logger: log})
	api := httpapi.New(o.cfg, httpapi.Deps{Ingest: svc, Devices: db, Telemetry: db, Auth: authn,
		IngestKey: httpapi.NewAPIKey(o.apiKey), Logger: log, Credentials: db, OTA: otaSvc,
		Campaigns: ota.NewCampaigns(otaSvc), OTLPTokens: db})
	hs := api.HTTPServer("", context.Background())
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		authn.Close()
		w.Close()
		db.Close()
	})
	return &authEnv{t: t, srv: srv, db: db, authn: authn, api: api}
}

// cred is how a request authenticates.
type cred func(*http.Request)

func basic(user, pass string) cred { return func(r *http.Request) { r.SetBasicAuth(user, pass) } }
func bearer(tok string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func apiKey(k string) cred { return func(r *http.Request) { r.Header.Set("X-API-Key", k) } }

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request with an optional JSON body and decodes a JSON answer.
func (e *authEnv) do(method, path string, c cred, body any, hdr ...string) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, ok := body.(map[string]any); ok {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c != nil {
		c(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &a.body)
	return a
}

// must fails the test unless the answer has the status.
func (a answer) must(t *testing.T, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	return a
}
