package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
)

// fullBlobs is a disk blob store on a full disk: every Put writes to /dev/full, so the error is the kernel's own
// ENOSPC, wrapped as the disk store wraps it.
type fullBlobs struct{ *disk.Store }

func (fullBlobs) Put(_ context.Context, r io.Reader, _ int64) (lodestone.BlobRef, bool, error) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		return lodestone.BlobRef{}, false, err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("write blob: %w", err)
	}
	return lodestone.BlobRef{}, false, fmt.Errorf("write blob: /dev/full accepted the bytes")
}

// sqliteFullErr is the error SQLite itself gives when its file cannot grow (SQLITE_FULL).
func sqliteFullErr(t *testing.T) error {
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("CREATE TABLE t (x BLOB)")
	if err == nil || !lodestone.StorageFull(err) {
		t.Fatalf("SQLite did not report a full database: %v", err)
	}
	return err
}

// fullBackup is a backup whose snapshot cannot be written: the database's own disk is full.
type fullBackup struct{ err error }

func (b fullBackup) Backup(context.Context) (*lodestone.Snapshot, error) {
	return nil, fmt.Errorf("sqlite: backup: VACUUM INTO: %w", b.err)
}

// lineCounter counts log lines holding a fragment.
type lineCounter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *lineCounter) count(fragment string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Count(c.buf.String(), fragment)
}

// storageFullEnv is a server on store whose blob store and backup target are full.
func storageFullEnv(t *testing.T, store lodestone.Store, backup lodestone.BackupService, logs io.Writer) *authEnv {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(logs, nil))
	admin, _, err := httpapi.NewBasicAuth(ctx, store, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := store.(lodestone.CredentialStore)
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Store: creds, Logger: log,
		BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	d, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := ingest.NewWriter(store, ingest.WriterConfig{}, log)
	otaSvc := ota.NewService(store, store, ota.Config{Logger: log})
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log),
		Devices: store, Telemetry: store, Auth: authn, Logger: log, Credentials: creds, Blobs: fullBlobs{d},
		OTA: otaSvc, Campaigns: ota.NewCampaigns(otaSvc), Backup: backup})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		authn.Close()
		w.Close()
		store.Close()
	})
	return &authEnv{t: t, srv: srv, api: api}
}

// TestStorageFullIsUnavailable: with the disk full, POST /ota/firmware and GET /admin/backup answered 500 and
// logged a line per request. A full disk (ENOSPC) or database (SQLITE_FULL) is a 503 with Retry-After that
// says so, and it is logged once per interval however many requests it refuses.
func TestStorageFullIsUnavailable(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			var logs lineCounter
			// The backup fails as SQLite does on a full disk on the SQLite backend, and as the file system
			// does under the PostgreSQL backend's local snapshot file.
			var bad error = &os.PathError{Op: "write", Path: "snapshot.db", Err: errENOSPC(t)}
			if tc.name == "sqlite" {
				bad = sqliteFullErr(t)
			}
			e := storageFullEnv(t, tc.open(t), fullBackup{bad}, &logs)
			for i := 0; i < 25; i++ {
				for _, a := range []answer{
					e.do("POST", "/ota/firmware", asAdmin, []byte("firmware image"), "X-Firmware-Version", "1.0.0",
						"Content-Type", "application/octet-stream"),
					e.do("GET", "/admin/backup", asAdmin, nil),
				} {
					if a.status != 503 || a.header.Get("Retry-After") != "30" || a.body["code"] != "unavailable" ||
						a.body["error"] != lodestone.MsgStorageFull {
						t.Fatalf("storage full: %d Retry-After %q: %s", a.status, a.header.Get("Retry-After"), a.raw)
					}
				}
			}
			if n := logs.count("storage is full"); n > 1 {
				t.Errorf("50 refused requests logged %d storage-full lines, want at most one a minute", n)
			}
			if n := logs.count("request failed"); n != 0 {
				t.Errorf("storage full logged as an internal error %d times", n)
			}
			// Reads carry on.
			e.do("GET", "/devices", asAdmin, nil).must(t, 200)
		})
	}
}

// errENOSPC is the kernel's ENOSPC, read back from a write to /dev/full.
func errENOSPC(t *testing.T) error {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Write([]byte("x"))
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("write /dev/full: %v", err)
	}
	return pe.Err
}

// fullWriter is a telemetry store whose database cannot grow: every write fails as SQLite does when full.
type fullWriter struct {
	lodestone.TelemetryWriter
	err error
}

func (f fullWriter) WriteTelemetry(context.Context, []*lodestone.DeviceBatch) error { return f.err }

// TestIngestOnFullStorageIsUnavailable: a full database refuses chunks with the same 503 and Retry-After as every
// other route, in ferrite's answer shape, so a gateway keeps the data and retries later.
func TestIngestOnFullStorageIsUnavailable(t *testing.T) {
	full := sqliteFullErr(t)
	e := newEnv(t, opts{wrap: func(w lodestone.TelemetryWriter) lodestone.TelemetryWriter {
		return fullWriter{w, full}
	}})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ingest/chunks", bytes.NewReader(v("V1", "V2")))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" ||
		!strings.Contains(string(raw), lodestone.MsgStorageFull) {
		t.Fatalf("ingest on a full database: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
}
