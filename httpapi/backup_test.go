package httpapi_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupWhileIngesting downloads /admin/backup while devices keep posting sessions. The file must carry
// ferrite's headers, open as a healthy SQLite database, and hold every session acknowledged before the request.
func TestBackupWhileIngesting(t *testing.T) {
	e := newEnv(t, opts{})
	session := v("V1", "V4", "V5", "V2") // DeviceInfo, reboot, 3 metrics, heartbeat
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for d := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", e.srv.URL+"/ingest/chunks", bytes.NewReader(session))
				req.Header.Set("X-Device-Id", fmt.Sprintf("poster-%d", d))
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("ingest: %d", resp.StatusCode)
					return
				}
				acked.Add(1)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	waitUntil(t, 30*time.Second, "50 ingests acknowledged before the backup", func() bool { return acked.Load() >= 50 })

	before := acked.Load()
	req, _ := http.NewRequest("GET", e.srv.URL+"/admin/backup", nil)
	req.SetBasicAuth("admin", adminPass)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	after := acked.Load() + 2 // each poster may have one committed but not yet counted
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("backup: %d %v %.200q", resp.StatusCode, err, body)
	}
	h := resp.Header
	if h.Get("Content-Type") != "application/x-sqlite3" ||
		!strings.HasPrefix(h.Get("Content-Disposition"), `attachment; filename="lodestone-backup-`) ||
		h.Get("Content-Length") != strconv.Itoa(len(body)) || h.Get("X-Backup-Taken") == "" {
		t.Fatalf("headers %v", h)
	}
	if !bytes.HasPrefix(body, []byte("SQLite format 3\x00")) {
		t.Fatalf("body starts %q", body[:16])
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var check string
	var hb, metrics, reboots int64
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity %q %v", check, err)
	}
	if err := raw.QueryRow(`SELECT (SELECT count(*) FROM heartbeats), (SELECT count(*) FROM metrics),
		(SELECT count(*) FROM reboots)`).Scan(&hb, &metrics, &reboots); err != nil {
		t.Fatal(err)
	}
	if hb < before || hb > after || metrics != 3*hb || reboots != hb {
		t.Fatalf("backup holds %d sessions (%d metrics, %d reboots); %d acknowledged before, %d after",
			hb, metrics, reboots, before, after)
	}
}
