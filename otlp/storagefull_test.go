package otlp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
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
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			d, err := disk.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var logs lockedBuf
			addr := serveWith(t, tc.open(t), otlp.Deps{Blobs: fullBlobs{d},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ctype, body := envelope(part{name: "metadata", ctype: "application/json",
				body: []byte(metadataJSON("detritus", installID, 1))}, part{name: "dump", body: []byte("dump")})
			for i := 0; i < 20; i++ {
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/crashes", bytes.NewReader(body))
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
