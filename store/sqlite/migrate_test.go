package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// TestLateMigrationIsApplied opens a database that reached a newer version before an older migration merged
// (version ranges are handed out to features built side by side): the missing migration is applied.
func TestLateMigrationIsApplied(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// As if 00050 had not existed when this database was migrated.
	if _, err := raw.Exec(`DROP TABLE device_tags; DROP TABLE device_group_members; DROP TABLE device_groups;
		DROP INDEX devices_firmware; DELETE FROM goose_db_version WHERE version_id = 50`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen with a missing older migration: %v", err)
	}
	defer db.Close()
	if _, err := db.FindGroups(ctx); err != nil {
		t.Fatalf("groups after the late migration: %v", err)
	}
}
