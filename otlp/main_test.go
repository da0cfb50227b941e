package otlp_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// legacyPHC is detritus' test vector: token "secret-token", salt "somesalt".
const legacyPHC = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BDY2yZMghVRfzM/ZnWJRYnbYdyXpxGgbqWqx3PdMCfg"

const installID = "11111111-1111-1111-1111-111111111111"

// tokenTOML has the detritus token and a second token for another project with a narrow prefix.
var tokenTOML = `
[[token]]
id = "detritus-prod"
secret = "` + legacyPHC + `"
project = "detritus"
source_prefix = "detritus/"

[[token]]
id = "narrow"
secret = "` + legacyPHC + `x"
project = "other"
source_prefix = "other/allowed"

[rate_limit]
logs_per_minute = 600000
logs_burst = 100000
crashes_per_minute = 600
crashes_burst = 100
`

type env struct {
	addr   string
	srv    *otlp.Server
	db     *sqlite.DB
	blobs  *disk.Store
	events *otlp.Fanout
	cancel context.CancelFunc
	done   chan error
}

func newEnv(t testing.TB, tomlText string, mod func(*otlp.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "l.db"), sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	tf, err := otlp.ParseTokenFile([]byte(tomlText))
	if err != nil {
		t.Fatal(err)
	}
	cfg := otlp.Config{Tokens: tf}
	cfg.Retention.BlobGrace = -1
	if mod != nil {
		mod(&cfg)
	}
	events := otlp.NewFanout()
	srv, err := otlp.New(cfg, otlp.Deps{Logs: db, Crashes: db, Blobs: blobs, Events: events, Tokens: db})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{addr: ln.Addr().String(), srv: srv, db: db, blobs: blobs, events: events, cancel: cancel,
		done: make(chan error, 1)}
	go func() { e.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := receive(t, e.done, time.Minute, "Serve's return after cancel"); err != nil {
			t.Errorf("Serve: %v", err)
		}
		db.Close()
	})
	return e
}
