package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// backup and restore rename a finished file into place; when the directory cannot be synced after that, the
// rename may not survive a power loss, so both fail with the reason instead of reporting success.
func TestBackupRestoreReportDirSyncFailure(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "lodestone.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	defer func(f func(string) error) { syncDir = f }(syncDir)
	syncDir = func(string) error { return errors.New("injected fsync failure") }

	file := filepath.Join(t.TempDir(), "b.db")
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"backup", file, "--data-dir", dir}, &o, &e, cliEnv); code == 0 ||
		!strings.Contains(e.String(), "injected fsync failure") {
		t.Fatalf("backup with a failing directory sync: exit %d, %q", code, e.String())
	}
	o.Reset()
	e.Reset()
	if code := run(context.Background(), []string{"restore", file, "--data-dir", t.TempDir()}, &o, &e, cliEnv); code == 0 ||
		!strings.Contains(e.String(), "injected fsync failure") {
		t.Fatalf("restore with a failing directory sync: exit %d, %q", code, e.String())
	}
}
