package lodestone

import (
	"context"
	"io"
	"time"
)

// BlobRef names a stored blob by its content: the lowercase hex SHA-256 of its bytes, and its size. Firmware
// images, ELF files, crash dumps and attachments are all blobs, so identical bytes are stored once.
type BlobRef struct {
	SHA256 string
	Size   int64
}

// Blob is an open blob. It seeks, so HTTP range requests and resumable downloads are served straight from
// storage without reading the whole blob into memory.
type Blob interface {
	io.ReadSeekCloser
	Ref() BlobRef
	ModTime() time.Time
}

// BlobStore keeps content-addressed blobs. Implementations stream: a blob of any size never sits in memory.
type BlobStore interface {
	// Put streams r into the store, hashing it on the way, and returns its ref. Storing bytes that are already
	// present keeps the one copy and reports existed. When maxSize > 0 and r holds more, Put stores nothing and
	// returns an ETOOLARGE error.
	Put(ctx context.Context, r io.Reader, maxSize int64) (ref BlobRef, existed bool, err error)
	// Open returns the blob with the given hex SHA-256, or an ENOTFOUND error.
	Open(ctx context.Context, sha256 string) (Blob, error)
	// Stat returns the ref of a stored blob, or an ENOTFOUND error.
	Stat(ctx context.Context, sha256 string) (BlobRef, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, sha256 string) error
	// Walk calls fn for every stored blob, in no particular order, until fn returns an error.
	Walk(ctx context.Context, fn func(BlobRef) error) error
}

// ValidSHA256 reports whether s is a lowercase hex SHA-256, the only form a blob name may take; stores check it
// before building any path or key from it.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
