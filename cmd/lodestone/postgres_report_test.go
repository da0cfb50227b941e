package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// On PostgreSQL the report commands read the database read-only or ask the server, and both backups (from the
// server, and taken locally) are SQLite files that report the same fleet.
func TestReportAndBackupOnPostgres(t *testing.T) {
	db := pgtest.URL(t)
	url, _ := serveInProcess(t, t.TempDir(), "--db", db)
	for i := range uint32(9) {
		postSession(t, url, fleetSession(fmt.Sprintf("pg-%d", i%3), i))
	}
	fromServer := filepath.Join(t.TempDir(), "server.db")
	runCLI(t, "backup", fromServer, "--server", url)
	local := filepath.Join(t.TempDir(), "local.db")
	runCLI(t, "backup", local, "--db", db)
	for _, cmd := range []string{"report", "faults", "metrics"} {
		want, _ := runCLI(t, cmd, "--json", "--server", url)
		for _, src := range [][]string{{"--db", db}, {"--db", fromServer}, {"--db", local}} {
			if got, _ := runCLI(t, append([]string{cmd, "--json"}, src...)...); got != want {
				t.Fatalf("%s %v:\n%s\nthe server says\n%s", cmd, src, got, want)
			}
		}
	}
}
