package disk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// A rename is durable only once its directory is synced: when that fails, Put reports it instead of a stored blob
// whose index row could outlive it.
func TestPutReportsDirSyncFailure(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("injected fsync failure")
	defer func(f func(string) error) { syncDir = f }(syncDir)
	syncDir = func(string) error { return boom }
	if _, _, err := s.Put(context.Background(), bytes.NewReader([]byte("x")), 0); !errors.Is(err, boom) {
		t.Fatalf("Put with a failing directory sync: %v, want the sync error", err)
	}
	syncDir = func(string) error { return nil }
	ref, existed, err := s.Put(context.Background(), bytes.NewReader([]byte("x")), 0)
	if err != nil || !existed {
		t.Fatalf("retry: existed %v, %v", existed, err)
	}
	// The dedup restarted the blob's age, for the orphan sweep's grace period.
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(s.path(ref.SHA256), old, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(context.Background(), bytes.NewReader([]byte("x")), 0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.path(ref.SHA256))
	if err != nil || time.Since(st.ModTime()) > time.Hour {
		t.Fatalf("dedup kept the old modification time: %v %v", st.ModTime(), err)
	}
}
