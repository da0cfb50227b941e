package otlp_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// orphanStore is what the orphan sweep needs from a backend.
type orphanStore interface {
	lodestone.LogStore
	lodestone.CrashUploadStore
	lodestone.ELFService
	FirmwareBlobInUse(ctx context.Context, sha256 string) (bool, error)
	Close() error
}

// A blob that nothing references (a cleanup Delete failed, or the process died between Put and commit) is found
// by the janitor and deleted once its grace period is over; blobs of crash uploads, ELF files and young blobs
// stay.
func TestJanitorSweepsOrphanBlobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) orphanStore
	}{
		{"sqlite", func(t *testing.T) orphanStore {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"postgres", func(t *testing.T) orphanStore {
			db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := tc.open(t)
			defer db.Close()
			dir := filepath.Join(t.TempDir(), "blobs")
			blobs, err := disk.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			put := func(data string, age time.Duration) string {
				t.Helper()
				ref, _, err := blobs.Put(ctx, bytes.NewReader([]byte(data)), 0)
				if err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-age)
				p := filepath.Join(dir, ref.SHA256[:2], ref.SHA256[2:4], ref.SHA256)
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
				return ref.SHA256
			}
			orphan := put("orphan", 2*time.Hour)
			young := put("young orphan", time.Minute)
			elf := put("elf bytes", 2*time.Hour)
			dump := put("dump bytes", 2*time.Hour)
			if err := db.CreateELF(ctx, &lodestone.ELF{Version: "1.0", Filename: "a.elf",
				Blob: lodestone.BlobRef{SHA256: elf, Size: 9}}); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateCrashUpload(ctx, &lodestone.CrashUpload{Project: "detritus", InstallID: installID,
				Platform: "linux", Version: "1", Kind: "Minidump", Timestamp: time.Now(), Metadata: "{}",
				Dump: lodestone.BlobRef{SHA256: dump, Size: 10}, TokenID: "t", ReceivedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			tf, _ := otlp.ParseTokenFile([]byte(tokenTOML))
			srv, err := otlp.New(otlp.Config{Tokens: tf, Retention: otlp.RetentionConfig{BlobGrace: time.Hour,
				BlobInUse: db.FirmwareBlobInUse}}, otlp.Deps{Logs: db, Crashes: db, Blobs: blobs})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			st, err := srv.RunJanitor(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.BlobsDeleted != 1 || st.BytesFreed != int64(len("orphan")) {
				t.Fatalf("janitor stats %+v, want the one orphan deleted", st)
			}
			if _, err := blobs.Stat(ctx, orphan); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
				t.Fatalf("orphan blob kept: %v", err)
			}
			for name, sha := range map[string]string{"young": young, "elf": elf, "dump": dump} {
				if _, err := blobs.Stat(ctx, sha); err != nil {
					t.Fatalf("%s blob deleted: %v", name, err)
				}
			}
		})
	}
}
