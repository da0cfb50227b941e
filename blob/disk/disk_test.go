package disk_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/blobtest"
	"github.com/lodestone-fleet/lodestone/blob/disk"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) lodestone.BlobStore {
		s, err := disk.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A crash mid-Put leaves a temporary file; reopening removes it and it never shows as a blob.
func TestOpenRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	if _, err := disk.Open(dir); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "tmp", "put-123")
	os.WriteFile(left, []byte("partial"), 0o600)
	s, err := disk.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("leftover temporary file survived reopen: %v", err)
	}
	if _, _, err := s.Put(context.Background(), bytes.NewReader([]byte("ok")), 0); err != nil {
		t.Fatal(err)
	}
}
