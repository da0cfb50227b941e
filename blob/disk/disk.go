// Package disk stores blobs as files in a local directory, named by their SHA-256 and written atomically:
// bytes go to a temporary file that is fsynced and then renamed into place, so a crash never leaves a partial
// blob under a real name.
package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/durable"
)

var _ lodestone.BlobStore = (*Store)(nil)

// syncDir is durable.SyncDir; tests replace it to make it fail.
var syncDir = durable.SyncDir

// Store is a directory of blobs laid out as ab/cd/abcd…, which keeps directories small.
type Store struct {
	dir string
}

// Open returns a store rooted at dir, creating it if needed, and removes temporary files left by a crash.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", dir, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "tmp", "put-*"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return &Store{dir: dir}, nil
}

// Ping reports whether blobs can be stored, for readiness checks: a temporary file is created and removed.
func (s *Store) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-ping-*")
	if err != nil {
		return fmt.Errorf("blob store %s: %w", s.dir, err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("blob store %s: %w", s.dir, err)
	}
	return nil
}

// path is only ever built from a validated hex digest, never from other user input.
func (s *Store) path(sum string) string {
	return filepath.Join(s.dir, sum[:2], sum[2:4], sum)
}

func notFound(sum string) error {
	return lodestone.Errorf(lodestone.ENOTFOUND, "blob %s not found", sum)
}

// Put implements lodestone.BlobStore.
func (s *Store) Put(ctx context.Context, r io.Reader, maxSize int64) (lodestone.BlobRef, bool, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*")
	if err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("create temporary blob: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // no-op after a successful rename
	}()
	h := sha256.New()
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, src})
	if err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("write blob: %w", err)
	}
	if maxSize > 0 && n > maxSize {
		return lodestone.BlobRef{}, false, lodestone.Errorf(lodestone.ETOOLARGE, "blob exceeds %d bytes", maxSize)
	}
	ref := lodestone.BlobRef{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	final := s.path(ref.SHA256)
	// A dedup restarts the blob's age, so that an orphan sweep's grace period counts from its latest Put. A blob
	// deleted meanwhile is stored anew.
	now := time.Now()
	if err := os.Chtimes(final, now, now); err == nil {
		return ref, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return lodestone.BlobRef{}, false, fmt.Errorf("touch blob: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("sync blob: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("close blob: %w", err)
	}
	dir := filepath.Dir(final)
	_, serr := os.Stat(dir)
	created := errors.Is(serr, fs.ErrNotExist) // its entry, and maybe its parent's, must be synced as well
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("create blob directory: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("store blob: %w", err)
	}
	// The rename is durable only once the directory entry is. Without that the caller must not commit an index
	// row naming the blob; the file stays, and a retry dedups onto it.
	dirs := []string{dir}
	if created {
		dirs = append(dirs, filepath.Dir(dir), s.dir)
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return lodestone.BlobRef{}, false, fmt.Errorf("store blob: %w", err)
		}
	}
	return ref, false, nil
}

// Open implements lodestone.BlobStore.
func (s *Store) Open(ctx context.Context, sum string) (lodestone.Blob, error) {
	if !lodestone.ValidSHA256(sum) {
		return nil, notFound(sum)
	}
	f, err := os.Open(s.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(sum)
	} else if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", sum, err)
	}
	return &file{File: f, ref: lodestone.BlobRef{SHA256: sum, Size: st.Size()}, mod: st.ModTime()}, nil
}

// Stat implements lodestone.BlobStore.
func (s *Store) Stat(ctx context.Context, sum string) (lodestone.BlobRef, error) {
	if !lodestone.ValidSHA256(sum) {
		return lodestone.BlobRef{}, notFound(sum)
	}
	st, err := os.Stat(s.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return lodestone.BlobRef{}, notFound(sum)
	} else if err != nil {
		return lodestone.BlobRef{}, fmt.Errorf("stat blob %s: %w", sum, err)
	}
	return lodestone.BlobRef{SHA256: sum, Size: st.Size()}, nil
}

// Delete implements lodestone.BlobStore.
func (s *Store) Delete(ctx context.Context, sum string) error {
	if !lodestone.ValidSHA256(sum) {
		return nil
	}
	if err := os.Remove(s.path(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", sum, err)
	}
	return nil
}

// Walk implements lodestone.BlobStore.
func (s *Store) Walk(ctx context.Context, fn func(lodestone.BlobRef) error) error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if filepath.Base(p) == "tmp" && filepath.Dir(p) == filepath.Clean(s.dir) {
				return filepath.SkipDir
			}
			return ctx.Err()
		}
		name := d.Name()
		if !lodestone.ValidSHA256(name) || !strings.HasSuffix(filepath.Dir(p), filepath.Join(name[:2], name[2:4])) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		return fn(lodestone.BlobRef{SHA256: name, Size: info.Size()})
	})
}

type file struct {
	*os.File
	ref lodestone.BlobRef
	mod time.Time
}

func (f *file) Ref() lodestone.BlobRef { return f.ref }
func (f *file) ModTime() time.Time     { return f.mod }

// ctxReader stops a long copy when the request that feeds it is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
