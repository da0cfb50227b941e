package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// ferriteFile builds a small ferrite-server database from the spec's schema (ferritedb/testdata).
func ferriteFile(t *testing.T) string {
	t.Helper()
	ddl, err := os.ReadFile("../../ferritedb/testdata/ferrite_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ferrite.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(ddl) + `
		INSERT INTO devices (id, device_id, firmware_version, device_key, status) VALUES (1, 'sensor-1', '1.0', 7,
			'online'), (2, 'sensor-2', '1.1', NULL, 'offline');
		INSERT INTO device_groups (id, name) VALUES (1, 'lab');
		INSERT INTO device_group_members (group_id, device_id) VALUES (1, 2);
		INSERT INTO fault_events (device_rowid, fault_type, pc, lr, cfsr, hfsr, mmfar, bfar, sp)
			VALUES (1, 0, 4096, 0, 0, 0, 0, 0, 0);
		INSERT INTO metrics (device_rowid, key, metric_type, value_json, timestamp_ticks)
			VALUES (1, 'temp', 1, '{"gauge":21.5}', 1), (2, 'temp', 1, '{"gauge":19}', 1);
		INSERT INTO reboot_events (device_rowid, reason) VALUES (2, 4);
		INSERT INTO ota_targets (device_id, target_version) VALUES ('sensor-1', '2.0');`); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportFerriteCommand(t *testing.T) {
	src := ferriteFile(t)
	dst := filepath.Join(t.TempDir(), "lodestone.db")
	code, out, errs := runCmd(t, "import-ferrite", src, "--db", dst, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		From     string `json:"from"`
		Imported struct {
			Devices, Keys, Groups, Memberships, Faults, Metrics, Reboots, Targets int
		} `json:"imported"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if i := res.Imported; res.From != src || i.Devices != 2 || i.Keys != 1 || i.Groups != 1 || i.Memberships != 1 ||
		i.Faults != 1 || i.Metrics != 2 || i.Reboots != 1 || i.Targets != 1 {
		t.Fatalf("summary %s", out)
	}
	if errs != "" {
		t.Fatalf("--json printed progress: %q", errs)
	}
	// Twice is refused; --force imports anyway, with a table (and no progress: stderr is no terminal).
	if code, _, errs := runCmd(t, "import-ferrite", src, "--db", dst); code != 1 ||
		!strings.Contains(errs, "already holds a ferrite import") {
		t.Fatalf("second import: exit %d: %s", code, errs)
	}
	code, out, errs = runCmd(t, "import-ferrite", "--force", "--db", dst, src)
	if code != 0 || !strings.Contains(out, "devices") || errs != "" {
		t.Fatalf("forced import: exit %d\n%s\n%s", code, out, errs)
	}
	db, err := sqlite.Open(context.Background(), dst, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, err := db.FindDeviceByKey(context.Background(), 7)
	if err != nil || d.DeviceID != "sensor-1" || d.FirmwareVersion != "1.0" {
		t.Fatalf("imported device %+v %v", d, err)
	}
	// Bad invocations say what is wrong.
	if code, _, errs := runCmd(t, "import-ferrite", "--db", dst); code != 2 || !strings.Contains(errs, "exactly one") {
		t.Fatalf("no path: %d %s", code, errs)
	}
	if code, _, errs := runCmd(t, "import-ferrite", filepath.Join(t.TempDir(), "missing.db"), "--db", dst); code != 1 ||
		!strings.Contains(errs, "not a readable file") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
}
