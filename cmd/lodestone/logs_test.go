package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

func logsExportFixture(t *testing.T, db lodestone.LogStore) {
	t.Helper()
	recv := time.Date(2026, 5, 19, 23, 59, 0, 0, time.UTC)
	rec := func(dev, body string, recv time.Time) *lodestone.LogRecord {
		return &lodestone.LogRecord{Project: "regicide", DeviceID: dev, Time: time.Unix(0, 42), ObservedTime: time.Unix(0, 43),
			Severity: 9, SeverityText: "INFO", Body: body, Attributes: `{"b":1,"a":"x"}`, ReceivedAt: recv}
	}
	if err := db.WriteLogs(context.Background(), []*lodestone.LogRecord{
		rec("i-1", `"one"`, recv), rec("i-1", `"two"`, recv.Add(2*time.Minute)), rec("i-2", `"three"`, recv),
	}); err != nil {
		t.Fatal(err)
	}
}

func checkExport(t *testing.T, dbArg string) {
	t.Helper()
	dir := t.TempDir()
	code, out, stderr := runCmd(t, "logs", "export", "--db", dbArg, "--dir", dir, "--since", "2026-05-19")
	if code != 0 || !strings.Contains(out, "exported 3 log records into 3 files") {
		t.Fatalf("logs export: %d %q %s", code, out, stderr)
	}
	line := func(body string) string {
		return `{"attributes":{"a":"x","b":1},"body":"` + body + `","dropped_attributes_count":0,"event_name":"",` +
			`"flags":0,"observed_time_unix_nano":43,"severity_number":9,"severity_text":"INFO","span_id":"",` +
			`"time_unix_nano":42,"trace_id":""}` + "\n"
	}
	for rel, want := range map[string]string{
		"logs/regicide/i-1/2026-05-19.ndjson": line("one"),
		"logs/regicide/i-1/2026-05-20.ndjson": line("two"),
		"logs/regicide/i-2/2026-05-19.ndjson": line("three"),
	} {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q %v, want %q", rel, got, err, want)
		}
	}
	// --until is exclusive and by day: only the 19th.
	dir = t.TempDir()
	if code, out, stderr = runCmd(t, "logs", "export", "--db", dbArg, "--dir", dir, "--until", "2026-05-20",
		"--project", "regicide"); code != 0 || !strings.Contains(out, "exported 2 log records into 2 files") {
		t.Fatalf("logs export --until: %d %q %s", code, out, stderr)
	}
	if code, _, stderr = runCmd(t, "logs", "export", "--db", dbArg, "--dir", dir, "--since", "yesterday"); code == 0 ||
		!strings.Contains(stderr, "--since") {
		t.Fatalf("bad --since: %d %s", code, stderr)
	}
	if code, _, stderr = runCmd(t, "logs", "export", "--db", dbArg); code == 0 || !strings.Contains(stderr, "--dir") {
		t.Fatalf("no --dir: %d %s", code, stderr)
	}
}

func TestLogsExportCommandSQLite(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lodestone.db")
	db, err := sqlite.Open(context.Background(), file, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logsExportFixture(t, db)
	db.Close()
	checkExport(t, file)
}

func TestLogsExportCommandPostgres(t *testing.T) {
	url := pgtest.URL(t)
	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logsExportFixture(t, db)
	db.Close()
	checkExport(t, url)
}
