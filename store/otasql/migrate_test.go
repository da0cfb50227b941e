package otasql_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// undo100 takes a migrated database back to before migration 00100, as a database written by the previous
// release is.
const undo100 = `DROP INDEX ota_campaign_devices_prev_firmware;
ALTER TABLE ota_campaign_devices DROP COLUMN prev_origin;
ALTER TABLE ota_targets DROP COLUMN origin;
DROP INDEX firmware_artifacts_fuota_path;
ALTER TABLE firmware_artifacts DROP COLUMN approved_by;
ALTER TABLE firmware_artifacts DROP COLUMN approved_at;
ALTER TABLE firmware_artifacts DROP COLUMN fuota_path;
ALTER TABLE firmware_artifacts DROP COLUMN origin;
DELETE FROM goose_db_version WHERE version_id = 100`

// before100 are rows the previous release wrote: an /ota/firmware upload, a FUOTA upload, a FUOTA row, an
// operator's target for a ferrite device naming the FUOTA file, and a hand-set target without an artifact.
const before100 = `INSERT INTO devices (device_id, first_seen, last_seen) VALUES ('ferrite-1', 0, 0);
INSERT INTO firmware_artifacts (id, version, build_id, sha256, size, filename, notes, created_at) VALUES
	(1, '2.0', 20, 'abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789', 10, '2.0-b20-abcdef01.bin', '', 0),
	(2, 'app.bin', 0, '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 10, 'app.bin', '', 0);
INSERT INTO ota_targets (device_id, target_version, firmware_id, from_version, created_at) VALUES
	('esp-1', 'app.bin', 2, '1.0', 0), ('ferrite-1', 'app.bin', 2, '1.0', 0);
INSERT INTO ota_targets (device_id, target_version, created_at) VALUES ('hand-set', '3.0', 0)`

// TestMigration100Backfill: rows from before 00100 get the origin the previous release's routes gave them, so
// an upgraded FUOTA listener keeps managing its own files and rows, and nothing else.
func TestMigration100Backfill(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
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
		if _, err := raw.Exec(undo100 + ";" + before100); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		db, err = sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		defer db.Close()
		checkBackfill(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.URL(t)
		db, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool().Exec(ctx, undo100+";"+before100); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		defer db.Close()
		checkBackfill(t, db)
	})
}

func checkBackfill(t *testing.T, s lodestone.OTAStore) {
	t.Helper()
	ctx := context.Background()
	op, _ := s.FindFirmwareByID(ctx, 1)
	fu, _ := s.FindFirmwareByID(ctx, 2)
	if op == nil || op.Origin != lodestone.OriginOperator || op.FUOTAPath != nil || !op.Signable() {
		t.Fatalf("operator upload: %+v", op)
	}
	if fu == nil || fu.Origin != lodestone.OriginFUOTA || fu.FUOTAPath == nil || *fu.FUOTAPath != "app.bin" ||
		fu.Signable() {
		t.Fatalf("FUOTA upload: %+v", fu)
	}
	for dev, want := range map[string]string{"esp-1": lodestone.OriginFUOTA,
		"ferrite-1": lodestone.OriginOperator, "hand-set": lodestone.OriginOperator} {
		if tg, err := s.FindTarget(ctx, dev); err != nil || tg.Origin != want {
			t.Errorf("target of %s: %+v %v, want origin %s", dev, tg, err, want)
		}
	}
	if err := s.DeleteFUOTATarget(ctx, "esp-1"); err != nil {
		t.Fatalf("FUOTA row after the upgrade: %v", err)
	}
}
