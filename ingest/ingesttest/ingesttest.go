// Package ingesttest runs the ingest pipeline over every real store for fuzz and edge tests: a fresh SQLite file
// always, and a fresh PostgreSQL schema when a test server is configured (pgtest.EnvVar), so that whatever a
// client sends meets the same storage it meets in production.
package ingesttest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// Key is the CHUNK_ENCRYPTION_KEY of the pipelines Open builds, so that fuzzed encrypted chunks are decrypted
// (and fail authentication) instead of refusing the request as a server without a key does.
const Key = "42424242424242424242424242424242"

// Backend is one store and an ingest pipeline writing to it.
type Backend struct {
	Name    string
	Store   lodestone.Store
	Service *ingest.Service
}

// Stores opens a fresh SQLite store and, when PostgreSQL tests are configured, a fresh PostgreSQL schema. They
// are closed when tb ends.
func Stores(tb testing.TB) []Backend {
	tb.Helper()
	ctx := context.Background()
	// Durability is not under test here: without fsyncs an input costs a fraction of a millisecond, so a fuzz
	// target runs many more inputs in its few seconds.
	lite, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "ingest.db"), sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lite.Close() })
	out := []Backend{{Name: "sqlite", Store: lite}}
	if os.Getenv(pgtest.EnvVar) != "" || os.Getenv("LODESTONE_REQUIRE_POSTGRES") != "" {
		pg, err := postgres.Open(ctx, pgtest.URL(tb)+"&synchronous_commit=off", postgres.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { pg.Close() })
		out = append(out, Backend{Name: "postgres", Store: pg})
	}
	return out
}

// Open returns Stores, each with an ingest service (decrypting with Key) writing to it through a group-commit
// writer. One set serves every iteration of a fuzz target: opening stores per input would cost more than the
// input.
func Open(tb testing.TB) []Backend {
	tb.Helper()
	key, err := chunk.ParseKey(Key)
	if err != nil {
		tb.Fatal(err)
	}
	cipher, err := chunk.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	bs := Stores(tb)
	for i := range bs {
		w := ingest.NewWriter(bs[i].Store, ingest.WriterConfig{}, log)
		// Registered after the store's cleanup, so it runs first: the writer commits what it holds, then the
		// store closes.
		tb.Cleanup(w.Close)
		bs[i].Service = ingest.NewService(w, ingest.Config{Cipher: cipher}, log)
	}
	return bs
}

// ServerFault reports whether err is one the client would see as a 5xx: anything but a refusal of the request
// itself (EINVALID, EFORBIDDEN, ...). Fuzz targets fail on it, since no input may make storage fail.
func ServerFault(err error) bool {
	switch lodestone.ErrorCode(err) {
	case "", lodestone.EINVALID, lodestone.EFORBIDDEN, lodestone.ETOOLARGE, lodestone.EUNAUTHORIZED:
		return false
	}
	return true
}
