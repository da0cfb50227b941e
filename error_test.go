package lodestone

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/lodestone-fleet/lodestone/lograte"
)

// TestStorageFullIsUnavailable: a full disk or database, as each layer reports it, is EUNAVAILABLE with a message
// that says so; other failures stay internal, and a coded error keeps its code.
func TestStorageFullIsUnavailable(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, enospc := f.Write([]byte("x")) // the kernel's own ENOSPC
	f.Close()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.Exec("PRAGMA max_page_count = 1")
	_, sqliteFull := db.Exec("CREATE TABLE t (x BLOB)") // SQLITE_FULL from SQLite itself
	if enospc == nil || sqliteFull == nil {
		t.Fatalf("no full disk to test with: %v, %v", enospc, sqliteFull)
	}
	for _, tc := range []struct {
		name string
		err  error
		full bool
	}{
		{"ENOSPC", fmt.Errorf("write blob: %w", enospc), true},
		{"SQLITE_FULL", fmt.Errorf("insert: %w", sqliteFull), true},
		{"PostgreSQL disk_full", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "53100",
			Message: `could not extend file "base/16384/16385": No space left on device`}), true},
		{"PostgreSQL unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"other", errors.New("boom"), false},
	} {
		if got := StorageFull(tc.err); got != tc.full {
			t.Errorf("%s: StorageFull(%v) = %v", tc.name, tc.err, got)
		}
		code, msg := EUNAVAILABLE, MsgStorageFull
		if !tc.full {
			code, msg = EINTERNAL, "internal error"
		}
		if ErrorCode(tc.err) != code || ErrorMessage(tc.err) != msg {
			t.Errorf("%s: %s %q", tc.name, ErrorCode(tc.err), ErrorMessage(tc.err))
		}
	}
	coded := errors.Join(Errorf(ETOOLARGE, "too big"), enospc)
	if ErrorCode(coded) != ETOOLARGE {
		t.Errorf("a coded error lost its code: %s", ErrorCode(coded))
	}
}

// TestLogStorageFullIsRateLimited: a full disk fails every write; it is logged once a minute, with a count of
// the lines left out.
func TestLogStorageFullIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	storageFullLog = lograte.Limiter{Every: time.Minute} // fresh, whatever other tests logged
	for range 13500 {
		LogStorageFull(log, errors.New("no space"), "path", "/v1/crashes")
	}
	if n := strings.Count(buf.String(), "storage is full"); n != 1 {
		t.Fatalf("%d lines, want 1: %s", n, buf.String())
	}
	// A minute on, the next line goes out with the count of those left out.
	if ok, n := storageFullLog.Allow(time.Now().Add(time.Minute)); !ok || n != 13499 {
		t.Fatalf("a minute later: ok=%v, %d left out; want true, 13499", ok, n)
	}
}
