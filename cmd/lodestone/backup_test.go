package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupAndRestore downloads a backup from a server that keeps ingesting, restores it into a new instance
// and checks that the restored server answers exactly what the backup holds, with every acknowledged session
// up to the backup in it.
func TestBackupAndRestore(t *testing.T) {
	dirA := t.TempDir()
	urlA, _ := serveInProcess(t, dirA)
	for i := range uint32(10) {
		postSession(t, urlA, fleetSession(fmt.Sprintf("dev-%d", i%4), i))
	}

	// Ingest runs through the backup.
	var acked atomic.Int64
	acked.Store(10)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint32(100); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Post(urlA+"/ingest/chunks", "application/octet-stream",
				bytes.NewReader(fleetSession("busy", i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("ingest during backup: %d", resp.StatusCode)
				return
			}
			acked.Add(1)
		}
	}()
	waitFor(t, 30*time.Second, "30 ingests acknowledged before the backup", func() bool { return acked.Load() >= 30 })
	file := filepath.Join(t.TempDir(), "fleet.db")
	before := acked.Load()
	out, _ := runCLI(t, "backup", file, "--server", urlA, "--json")
	close(stop)
	wg.Wait()
	var info backupInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	st, err := os.Stat(file)
	if err != nil || st.Size() != info.Bytes || info.SchemaVersion == 0 || info.Taken == "" {
		t.Fatalf("backup summary %+v, file %v %v", info, st, err)
	}
	if hb := info.Rows["heartbeats"]; hb < before || hb > acked.Load()+1 || info.Rows["reboots"] != hb {
		t.Fatalf("backup holds %d sessions (%d reboots); %d acknowledged before it, %d in all", hb,
			info.Rows["reboots"], before, acked.Load())
	}
	// No second copy over the first without --force; no partial files left.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"backup", file, "--server", urlA}, &o, &e, cliEnv); code == 0 ||
		!strings.Contains(e.String(), "exists") {
		t.Fatalf("backup over an existing file: %d %s", code, e.String())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*partial*")); len(left) != 0 {
		t.Fatalf("partial files left: %v", left)
	}

	// Restoring over the running server's database is refused.
	e.Reset()
	if code := run(context.Background(), []string{"restore", file, "--data-dir", dirA}, &o, &e, cliEnv); code == 0 ||
		!strings.Contains(e.String(), "open in another process") {
		t.Fatalf("restore under a running server: %d %s %s", code, e.String(), o.String())
	}

	// Restore into a new instance and start it: it answers what the backup holds.
	dirB := t.TempDir()
	runCLI(t, "restore", file, "--data-dir", dirB)
	urlB, stopB := serveInProcess(t, dirB)
	for _, cmd := range [][]string{{"report"}, {"faults", "--limit", "1000"}, {"metrics", "--limit", "1000"}} {
		fromFile, _ := runCLI(t, append(cmd, "--json", "--db", file)...)
		fromServer, _ := runCLI(t, append(cmd, "--json", "--server", urlB)...)
		if fromFile != fromServer {
			t.Fatalf("%v: the restored server answers\n%s\nthe backup holds\n%s", cmd, fromServer, fromFile)
		}
		if len(fromFile) < 100 {
			t.Fatalf("%v: suspiciously little data: %s", cmd, fromFile)
		}
	}
	// The restored server keeps working: new data lands after the restored ids.
	postSession(t, urlB, fleetSession("after-restore", 1))
	rep, _ := runCLI(t, "report", "--server", urlB)
	if !strings.Contains(rep, "after-restore") || !strings.Contains(rep, "busy") {
		t.Fatalf("report after restore:\n%s", rep)
	}
	stopB()

	// A local snapshot of the live server's database, then a restore over an existing database keeps it aside.
	local := filepath.Join(t.TempDir(), "local.db")
	runCLI(t, "backup", local, "--data-dir", dirA)
	out, _ = runCLI(t, "restore", local, "--data-dir", dirB, "--json")
	var res struct {
		Previous string           `json:"previous"`
		Rows     map[string]int64 `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Previous == "" || res.Rows["heartbeats"] < acked.Load() {
		t.Fatalf("restore over an existing database: %s %v (acked %d)", out, err, acked.Load())
	}
	if _, err := os.Stat(res.Previous); err != nil {
		t.Fatalf("previous database not kept: %v", err)
	}

	// Not a backup: refused before anything is touched.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("definitely not sqlite"), 0o600)
	e.Reset()
	if code := run(context.Background(), []string{"restore", junk, "--data-dir", dirB}, &o, &e, cliEnv); code == 0 ||
		!strings.Contains(e.String(), "not a SQLite database") {
		t.Fatalf("restoring junk: %d %s", code, e.String())
	}
}
