package crash

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/symbol"
)

// indexCache keeps built symbol indexes, least recently used dropped first. It is keyed by the blob's SHA-256,
// so the same file uploaded under two versions is indexed once and a deleted ELF's id never aliases another.
type indexCache struct {
	blobs lodestone.BlobStore
	max   int

	mu    sync.Mutex
	order *list.List // of *cacheEntry, most recent first
	byKey map[string]*list.Element
}

type cacheEntry struct {
	key   string
	ready chan struct{} // closed when ix/err are set; concurrent lookups of one ELF build it once
	ix    *symbol.Index
	err   error
}

func newIndexCache(blobs lodestone.BlobStore, max int) *indexCache {
	return &indexCache{blobs: blobs, max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// get returns the index of the ELF stored as blob sha, building it on first use.
func (c *indexCache) get(ctx context.Context, sha string) (*symbol.Index, error) {
	c.mu.Lock()
	if el, ok := c.byKey[sha]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		<-e.ready
		return e.ix, e.err
	}
	e := &cacheEntry{key: sha, ready: make(chan struct{})}
	c.byKey[sha] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(*cacheEntry)
		delete(c.byKey, old.key)
	}
	c.mu.Unlock()

	e.ix, e.err = c.build(ctx, sha)
	close(e.ready)
	if e.err != nil {
		c.drop(sha) // a failure (storage down) is retried next time, not remembered
	}
	return e.ix, e.err
}

// drop forgets an index, for a deleted ELF.
func (c *indexCache) drop(sha string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[sha]; ok {
		c.order.Remove(el)
		delete(c.byKey, sha)
	}
}

// localFile is a blob backed by an *os.File.
type localFile interface {
	io.ReaderAt
	Stat() (os.FileInfo, error)
}

// build reads the ELF through io.ReaderAt: straight from the blob when it is a local file (the disk store), else
// from a temporary copy, so a remote blob is streamed once instead of fetched by a ranged GET per section read
// (minio's Object.ReadAt also failed debug/elf's first read against the S3 test gateway).
func (c *indexCache) build(ctx context.Context, sha string) (*symbol.Index, error) {
	b, err := c.blobs.Open(ctx, sha)
	if err != nil {
		return nil, fmt.Errorf("crash: open ELF blob %s: %w", sha, err)
	}
	defer b.Close()
	if f, ok := b.(localFile); ok {
		return symbol.New(f)
	}
	tmp, err := os.CreateTemp("", "lodestone-elf-*")
	if err != nil {
		return nil, fmt.Errorf("crash: temporary ELF copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, b); err != nil {
		return nil, fmt.Errorf("crash: copy ELF blob %s: %w", sha, err)
	}
	return symbol.New(tmp)
}

// Inspect builds (and caches) the index of the ELF stored as blob sha and returns what identifies its firmware.
// Uploads call it so that a file that is not a usable ARM ELF is refused before it is filed.
func (s *Symbolicator) Inspect(ctx context.Context, sha string) (buildID string, buildID64 uint64,
	version string, err error) {
	ix, err := s.cache.get(ctx, sha)
	if err != nil {
		if errors.Is(err, symbol.ErrNotARM) || strings.HasPrefix(err.Error(), "symbol:") {
			return "", 0, "", lodestone.Errorf(lodestone.EINVALID, "not a usable Cortex-M ELF file: %v",
				strings.TrimPrefix(err.Error(), "symbol: "))
		}
		return "", 0, "", err
	}
	version, _ = ix.FirmwareVersion()
	return ix.BuildIDHex(), ix.BuildID64(), version, nil
}
