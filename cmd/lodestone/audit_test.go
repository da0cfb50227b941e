package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditCommand: actions through a running server show in `lodestone audit` from the server and from the
// data directory, `audit verify` holds on both, and fails naming the entry once a row is edited or deleted with
// SQL.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	url, stop := serveInProcess(t, dir)
	for _, body := range []string{`{"name":"lab"}`, `{"name":"field"}`} {
		req, _ := http.NewRequest("POST", url+"/groups", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", cliPass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("create group: %d %s", resp.StatusCode, raw)
		}
	}
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		c := &auditCmd{stdout: &out, stderr: &errb, getenv: cliEnv}
		err := c.Run(context.Background(), args)
		return out.String() + errb.String(), err
	}

	out, err := cli("--server", url, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Entries []struct {
			ID     int64  `json:"id"`
			Action string `json:"action"`
			Actor  string `json:"actor"`
			Via    string `json:"via"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Entries) != 2 ||
		page.Entries[0].Action != "group.create" || page.Entries[0].Actor != "admin" || page.Entries[0].Via != "api" {
		t.Fatalf("audit --server --json: %v %s", err, out)
	}
	if out, err := cli("verify", "--server", url); err != nil || !strings.Contains(out, "verified: 2 entries") {
		t.Fatalf("audit verify --server: %v %s", err, out)
	}
	stop()

	// A local backup is recorded in the database it copies, as the operating-system user through the CLI.
	var bout bytes.Buffer
	bc := &backupCmd{stdout: &bout, stderr: &bout, getenv: cliEnv}
	if err := bc.Run(context.Background(), []string{filepath.Join(t.TempDir(), "b.db"), "--data-dir", dir,
		"--json"}); err != nil {
		t.Fatalf("local backup: %v %s", err, bout.String())
	}
	out, err = cli("--data-dir", dir, "--action", "backup.*", "--json")
	if err != nil || !strings.Contains(out, `"action":"backup.local"`) || !strings.Contains(out, `"via":"cli"`) ||
		!strings.Contains(out, `"actor":"os:`) {
		t.Fatalf("local backup entry: %v %s", err, out)
	}

	out, err = cli("--data-dir", dir, "--action", "group.*")
	if err != nil || strings.Count(out, "group.create") != 2 || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("audit --data-dir: %v\n%s", err, out)
	}
	if out, err := cli("verify", "--data-dir", dir); err != nil || !strings.Contains(out, "verified: 3 entries") {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	_, rep, _ := doctorJSON(t, cliEnv, "--data-dir", dir)
	wantStatus(t, rep, "audit_log", "ok", "3 entries")

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "lodestone.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'someone-else' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("verify", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "entry 1:") {
		t.Fatalf("verify after an edit: %v", err)
	}
	// doctor names the tampering too, and fails.
	code, rep, _ := doctorJSON(t, cliEnv, "--data-dir", dir)
	wantStatus(t, rep, "audit_log", "error", "entry 1")
	if code == 0 {
		t.Fatal("doctor exits 0 with an edited audit entry")
	}
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'admin' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("verify", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "entry 2:") {
		t.Fatalf("verify after a deletion: %v", err)
	}
	if _, err := cli("--limit", "0", "--data-dir", dir); err == nil {
		t.Fatal("--limit 0 accepted")
	}
}
