package otlp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// fullBlobs is a disk blob store on a full disk: every Put writes to /dev/full and fails with the kernel's ENOSPC.
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

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCrashUploadOnFullDiskIsUnavailable: POST /v1/crashes answered 500 "storage I/O error" when the disk was
// full, so detritus gave up on the crash, and logged each one. It is a 503 with Retry-After, which detritus
// retries, logged once per interval; on both backends.
func TestCrashUploadOnFullDiskIsUnavailable(t *testing.T) {
	type store interface {
		lodestone.LogStore
		lodestone.CrashUploadStore
		Close() error
	}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) store
	}{
		{"sqlite", func(t *testing.T) store {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"postgres", func(t *testing.T) store {
			db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.open(t)
			d, err := disk.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			tf, err := otlp.ParseTokenFile([]byte(tokenTOML))
			if err != nil {
				t.Fatal(err)
			}
			var logs lockedBuf
			srv, err := otlp.New(otlp.Config{Tokens: tf}, otlp.Deps{Logs: db, Crashes: db, Blobs: fullBlobs{d},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			t.Cleanup(func() {
				cancel()
				receive(t, done, time.Minute, "Serve's return after cancel")
				db.Close()
			})
			e := &env{addr: ln.Addr().String(), srv: srv}
			ctype, body := envelope(part{name: "metadata", ctype: "application/json",
				body: []byte(metadataJSON("detritus", installID, 1))}, part{name: "dump", body: []byte("dump")})
			for i := 0; i < 20; i++ {
				req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", bytes.NewReader(body))
				req.Header.Set("Content-Type", ctype)
				req.Header.Set("Authorization", "Bearer secret-token")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" ||
					!strings.Contains(string(raw), lodestone.MsgStorageFull) {
					t.Fatalf("full disk: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
				}
			}
			if n := strings.Count(logs.String(), "storage is full"); n > 1 {
				t.Errorf("20 refused uploads logged %d storage-full lines: %s", n, logs.String())
			}
			if strings.Contains(logs.String(), "crash upload: store blob") {
				t.Errorf("a full disk was logged as an I/O error: %s", logs.String())
			}
		})
	}
}
