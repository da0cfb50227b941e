package ferritedb_test

import (
	"context"
	"database/sql"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ferritedb"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// sampleRows fill a ferrite database: three devices (one registered by key, one with a u64 build id above 2^63),
// two groups, faults, every kind of metric (a NaN as Rust writes it, and one unreadable row), reboots and
// targets. Times are ferrite's datetime('now') text.
const sampleRows = `
INSERT INTO devices (id, device_id, firmware_version, build_id, first_seen, last_seen, name, status, tags)
	VALUES (1, 'sensor-42', '1.4.2', -1, '2026-01-10 08:00:00', '2026-03-01 12:00:00', 'Boiler', 'offline',
	        '["north","hvac"]');
INSERT INTO devices (id, device_id, first_seen, last_seen, device_key, name, status, provisioned_by, provisioned_at)
	VALUES (2, 'A300F1B2', '2026-01-05 09:00:00', '2026-01-05 09:00:00', 2734748082, 'pump', 'provisioned',
	        'factory', '2026-01-05 09:00:00');
INSERT INTO devices (id, device_id, firmware_version, build_id, first_seen, last_seen, status)
	VALUES (3, 'gw-1', '0.9', 9, '2026-02-01 00:00:00', '2026-03-02 00:00:00', 'online');
INSERT INTO device_groups (id, name, description, created_at) VALUES (1, 'north', 'roof units', '2026-01-01 00:00:00');
INSERT INTO device_groups (id, name, created_at) VALUES (2, 'empty', '2026-01-02 00:00:00');
INSERT INTO device_group_members (group_id, device_id, added_at) VALUES (1, 1, '2026-01-11 00:00:00');
INSERT INTO device_group_members (group_id, device_id, added_at) VALUES (1, 2, '2026-01-11 00:00:00');
INSERT INTO crash_groups (id, signature_hash, pc, fault_type, title) VALUES (1, '0008002000', 134225920, 0, 'main');
INSERT INTO fault_events (device_rowid, fault_type, pc, lr, cfsr, hfsr, mmfar, bfar, sp, stack_snapshot, symbol,
	created_at, crash_group_id)
	VALUES (1, 0, 134225920, 134226000, 1, 1073741824, 0, 0, 536936448, '[3735928559,1,2]', 'main',
	        '2026-02-01 10:00:00', 1),
	       (1, 3, 134230000, 0, 65536, 0, 0, 0, 536936400, '[]', NULL, '2026-02-02 10:00:00', NULL),
	       (1, 0, 134225920, 134226000, 1, 1073741824, 0, 0, 536936448, '[]', 'main', '2026-02-03 10:00:00', 1),
	       (3, 2, 4096, 0, 512, 0, 0, 0, 536870912, '[]', NULL, '2026-02-04 10:00:00', NULL);
INSERT INTO metrics (device_rowid, key, metric_type, value_json, timestamp_ticks, created_at)
	VALUES (1, 'clicks', 0, '{"counter":42}', 1000, '2026-02-10 00:00:00'),
	       (1, 'temp', 1, '{"gauge":25.5}', 1000, '2026-02-10 00:00:00'),
	       (1, 'lat', 2, '{"histogram":{"min":1.5,"max":8}}', 1000, '2026-02-10 00:00:00'),
	       (1, 'temp', 1, '{"gauge":NaN}', 2000, '2026-02-11 00:00:00'),
	       (3, 'odd', 7, '{"raw":"0102030405060708"}', 5, '2026-02-12 00:00:00'),
	       (3, 'bad', 1, '{"bogus":1}', 5, '2026-02-12 00:00:00');
INSERT INTO reboot_events (device_rowid, reason, extra, boot_sequence, uptime_before_reboot, created_at)
	VALUES (1, 3, 0, 7, 3600, '2026-02-05 00:00:00'), (3, 1, 2, 1, 10, '2026-02-06 00:00:00');
INSERT INTO ota_targets (device_id, target_version, target_build_id, firmware_url, created_at)
	VALUES ('sensor-42', '2.0', 20, '/ota/firmware/3/download', '2026-02-20 00:00:00'),
	       ('A300F1B2', '1.5', 15, 'https://cdn.example.com/pump-1.5.bin', '2026-02-21 00:00:00');
-- Enough metrics that the import writes several transactions and reports progress.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000)
INSERT INTO metrics (device_rowid, key, metric_type, value_json, timestamp_ticks, created_at)
	SELECT 3, 'load', 1, '{"gauge":' || (i % 100) || '}', i, '2026-02-15 00:00:' || printf('%02d', i % 60)
	FROM n;
`

// FerriteDB builds a ferrite-server database from the spec's schema and the sample rows.
func FerriteDB(tb testing.TB) string {
	tb.Helper()
	ddl, err := os.ReadFile("testdata/ferrite_schema.sql")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "ferrite.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(ddl)); err != nil {
		tb.Fatalf("schema: %v", err)
	}
	if _, err := db.Exec(sampleRows); err != nil {
		tb.Fatalf("rows: %v", err)
	}
	return path
}

func openSource(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func eachBackend(t *testing.T, fn func(t *testing.T, s lodestone.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestImportFerriteDatabase(t *testing.T) {
	path := FerriteDB(t)
	eachBackend(t, func(t *testing.T, s lodestone.Store) {
		ctx := context.Background()
		var last ferritedb.Progress
		var reports int
		sum, err := ferritedb.Import(ctx, openSource(t, path), s, ferritedb.Options{Progress: func(p ferritedb.Progress) {
			if p.Rows < last.Rows {
				t.Errorf("progress went back: %+v after %+v", p, last)
			}
			last = p
			reports++
		}})
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		want := ferritedb.Summary{Devices: 3, Keys: 1, Groups: 2, Memberships: 2, Faults: 4, Metrics: 12005, Reboots: 2,
			Targets: 2, Skipped: 1}
		got := *sum
		got.Warnings = nil
		if got.Devices != want.Devices || got.Keys != want.Keys || got.Groups != want.Groups ||
			got.Memberships != want.Memberships || got.Faults != want.Faults || got.Metrics != want.Metrics ||
			got.Reboots != want.Reboots || got.Targets != want.Targets || got.Skipped != want.Skipped {
			t.Fatalf("summary %+v, want %+v", got, want)
		}
		if w := strings.Join(sum.Warnings, "\n"); !strings.Contains(w, "/ota/firmware/3/download") ||
			!strings.Contains(w, `{"bogus":1}`) {
			t.Fatalf("warnings %q", sum.Warnings)
		}
		if last.Rows != last.Total || last.Total != 3+2+2+2+4+12006+2 || reports < 12 {
			t.Fatalf("progress: last %+v after %d reports", last, reports)
		}

		// Devices keep their times, status, u64 build id, key and tags.
		d, err := s.FindDeviceByID(ctx, "sensor-42")
		if err != nil {
			t.Fatal(err)
		}
		if d.BuildID != math.MaxUint64 || d.Status != lodestone.StatusOffline || !d.FirstSeen.Equal(ts("2026-01-10 08:00:00")) ||
			!d.LastSeen.Equal(ts("2026-03-01 12:00:00")) || *d.Name != "Boiler" || d.FirmwareVersion != "1.4.2" {
			t.Fatalf("sensor-42 %+v", d)
		}
		k, err := s.FindDeviceByKey(ctx, 0xA300F1B2)
		if err != nil || k.DeviceID != "A300F1B2" || *k.ProvisionedBy != "factory" ||
			!k.ProvisionedAt.Equal(ts("2026-01-05 09:00:00")) || k.Status != lodestone.StatusProvisioned {
			t.Fatalf("by key: %+v %v", k, err)
		}
		if gw, _ := s.FindDeviceByID(ctx, "gw-1"); gw.Status != lodestone.StatusOnline {
			t.Fatalf("gw-1 %+v", gw)
		}
		ids := func(f lodestone.DeviceFilter) []string {
			devs, err := s.FindDevices(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, d := range devs {
				out = append(out, d.DeviceID)
			}
			return out
		}
		if got := ids(lodestone.DeviceFilter{Tag: "hvac"}); !slices.Equal(got, []string{"sensor-42"}) {
			t.Fatalf("tag hvac: %v", got)
		}
		// Groups and members.
		groups, err := s.FindGroups(ctx)
		if err != nil || len(groups) != 2 || groups[1].Name != "north" || groups[1].DeviceCount != 2 ||
			*groups[1].Description != "roof units" || !groups[1].CreatedAt.Equal(ts("2026-01-01 00:00:00")) {
			t.Fatalf("groups %+v %v", groups, err)
		}
		if got := ids(lodestone.DeviceFilter{GroupID: groups[1].ID}); !slices.Equal(got, []string{"sensor-42", "A300F1B2"}) {
			t.Fatalf("north members %v", got)
		}
		// Faults with their registers, stack and times, newest first.
		faults, err := s.FindFaults(ctx, lodestone.TelemetryFilter{DeviceID: "sensor-42"})
		if err != nil || len(faults) != 3 {
			t.Fatalf("faults %d %v", len(faults), err)
		}
		f := faults[2]
		if f.Registers.PC != 0x08002000 || f.Registers.LR != 134226000 || f.HFSR != 0x40000000 || f.Stack[0] != 0xDEADBEEF ||
			f.Stack[2] != 2 || !f.ReceivedAt.Equal(ts("2026-02-01 10:00:00")) || faults[0].FaultType != 0 ||
			faults[1].CFSR != 65536 {
			t.Fatalf("oldest fault %+v", f)
		}
		// Metrics read back as ferrite's value_json.
		ms, err := s.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "sensor-42"}})
		if err != nil || len(ms) != 4 {
			t.Fatalf("metrics %d %v", len(ms), err)
		}
		values := map[string]bool{}
		for _, m := range ms {
			values[m.Key+"="+m.ValueJSON()] = true
		}
		for _, v := range []string{`clicks={"counter":42}`, `temp={"gauge":25.5}`,
			`lat={"histogram":{"min":1.5,"max":8}}`, `temp={"gauge":null}`} {
			if !values[v] {
				t.Errorf("metric %s missing from %v", v, values)
			}
		}
		odd, _ := s.FindMetrics(ctx, lodestone.MetricFilter{Key: "odd"})
		if len(odd) != 1 || odd[0].ValueJSON() != `{"raw":"0102030405060708"}` || odd[0].Type != 7 {
			t.Fatalf("raw metric %+v", odd)
		}
		load, _ := s.FindMetrics(ctx, lodestone.MetricFilter{Key: "load",
			TelemetryFilter: lodestone.TelemetryFilter{Limit: lodestone.MaxListLimit}})
		if len(load) != lodestone.MaxListLimit {
			t.Fatalf("load metrics %d", len(load))
		}
		reboots, _ := s.FindReboots(ctx, lodestone.TelemetryFilter{})
		if len(reboots) != 2 || reboots[1].Reason != 3 || reboots[1].BootSequence != 7 ||
			reboots[1].UptimeBeforeReboot != 3600 || reboots[0].DeviceID != "gw-1" {
			t.Fatalf("reboots %+v", reboots)
		}
		// Targets: a ferrite artifact URL is dropped (its artifact is not here), an absolute one is kept.
		tg, err := s.FindTarget(ctx, "sensor-42")
		if err != nil || tg.TargetVersion != "2.0" || tg.TargetBuildID != 20 || tg.FirmwareURL != nil {
			t.Fatalf("sensor-42 target %+v %v", tg, err)
		}
		if tg, _ := s.FindTarget(ctx, "A300F1B2"); tg.FirmwareURL == nil ||
			*tg.FirmwareURL != "https://cdn.example.com/pump-1.5.bin" {
			t.Fatalf("pump target %+v", tg)
		}

		// A second import would duplicate the history: refused unless forced.
		if _, err := ferritedb.Import(ctx, openSource(t, path), s, ferritedb.Options{}); lodestone.ErrorCode(err) !=
			lodestone.ECONFLICT {
			t.Fatalf("second import: %v", err)
		}
		again, err := ferritedb.Import(ctx, openSource(t, path), s, ferritedb.Options{Force: true})
		if err != nil || again.Devices != 3 || again.Memberships != 2 {
			t.Fatalf("forced import: %+v %v", again, err)
		}
		if groups, _ := s.FindGroups(ctx); len(groups) != 2 || groups[1].DeviceCount != 2 {
			t.Fatalf("groups after a forced import %+v", groups)
		}
	})
}

func TestImportRefusesOtherDatabases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, _ := sql.Open("sqlite3", path)
	db.Exec(`CREATE TABLE devices (id INTEGER PRIMARY KEY)`)
	db.Close()
	dst, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	_, err = ferritedb.Import(context.Background(), openSource(t, path), dst, ferritedb.Options{})
	if lodestone.ErrorCode(err) != lodestone.EINVALID || !strings.Contains(err.Error(), "not a ferrite-server database") {
		t.Fatalf("import of another database: %v", err)
	}
}
