package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// The main API and the OTLP receiver get one token store per database, so a revocation through the API reaches
// the receiver's cache at once.
func TestAPITokensAreSharedPerDatabase(t *testing.T) {
	open := func() *sqlite.DB {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	if apiTokens(a) != apiTokens(a) {
		t.Fatal("two token stores for one database")
	}
	if apiTokens(a) == apiTokens(b) {
		t.Fatal("one token store for two databases")
	}
}
