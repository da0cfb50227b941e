package lodestone

import (
	"context"
	"time"
)

// CrashUpload is a crash report uploaded in detritus' multipart format: the client's metadata, the dump blob and
// any attachments, all content-addressed in the BlobStore.
type CrashUpload struct {
	ID        int64
	Project   string
	InstallID string // lowercase hyphenated UUID
	Platform  string
	Version   string
	Kind      string    // Minidump, PanicTarball or RustcIce
	Timestamp time.Time // the client's clock
	Metadata  string    // the normalised CrashMetadata JSON

	Dump         BlobRef
	DumpEncoding string // the part's Content-Encoding, empty when none
	Dedup        bool   // the dump bytes were already stored
	Attachments  []CrashAttachment
	TokenID      string
	ReceivedAt   time.Time
}

// CrashAttachment is one attach:<key> part of an upload.
type CrashAttachment struct {
	Key             string
	ContentType     string
	Blob            BlobRef
	ContentEncoding string
	Dedup           bool
}

// CrashUploadFilter selects uploads, newest received first.
type CrashUploadFilter struct {
	ID        int64 // one upload by id; 0: any
	Project   string
	InstallID string
	Since     time.Time // inclusive, on ReceivedAt
	Until     time.Time // exclusive
	Limit     int
	Offset    int
}

// CrashUploadStore keeps the crash upload index.
type CrashUploadStore interface {
	// CreateCrashUpload stores u with its attachments in one transaction and sets u.ID.
	CreateCrashUpload(ctx context.Context, u *CrashUpload) error
	FindCrashUploads(ctx context.Context, filter CrashUploadFilter) ([]*CrashUpload, error)
	// DeleteCrashUploadsBefore removes uploads received before cutoff; it returns how many, and the blob hashes
	// that they referenced and no remaining upload references.
	DeleteCrashUploadsBefore(ctx context.Context, cutoff time.Time) (deleted int64, orphans []string, err error)
	// CrashBlobReferenced reports which of the hashes an upload (dump or attachment) references.
	CrashBlobReferenced(ctx context.Context, sha256s []string) (map[string]bool, error)
}
