package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

// BlobProgress is reported as blobs move.
type BlobProgress struct {
	Blobs, TotalBlobs int
	Bytes, TotalBytes int64
}

// CopyBlobs copies every blob of from into to, streaming each one, and skips blobs to already holds. Each copy is
// checked: the destination must name it by the same SHA-256 the source does. It returns how many blobs it copied
// and how many were already there.
func CopyBlobs(ctx context.Context, from, to lodestone.BlobStore, progress func(BlobProgress)) (copied,
	present int, err error) {
	if progress == nil {
		progress = func(BlobProgress) {}
	}
	var refs []lodestone.BlobRef
	var p BlobProgress
	if err := from.Walk(ctx, func(r lodestone.BlobRef) error {
		refs = append(refs, r)
		p.TotalBytes += r.Size
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("transfer: list source blobs: %w", err)
	}
	p.TotalBlobs = len(refs)
	progress(p)
	for _, r := range refs {
		if _, err := to.Stat(ctx, r.SHA256); err == nil {
			present++
		} else if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return copied, present, fmt.Errorf("transfer: look up blob %s in the destination: %w", r.SHA256, err)
		} else {
			if err := copyBlob(ctx, from, to, r); err != nil {
				return copied, present, err
			}
			copied++
		}
		p.Blobs++
		p.Bytes += r.Size
		progress(p)
	}
	return copied, present, nil
}

func copyBlob(ctx context.Context, from, to lodestone.BlobStore, r lodestone.BlobRef) error {
	b, err := from.Open(ctx, r.SHA256)
	if err != nil {
		return fmt.Errorf("transfer: open blob %s: %w", r.SHA256, err)
	}
	defer b.Close()
	got, _, err := to.Put(ctx, b, 0)
	if err != nil {
		return fmt.Errorf("transfer: store blob %s: %w", r.SHA256, err)
	}
	if got.SHA256 != r.SHA256 || got.Size != r.Size {
		// The source returned other bytes than its name says: a damaged file. Do not keep the copy.
		err := fmt.Errorf("transfer: blob %s read back as %s (%d bytes): the source copy is damaged", r.SHA256,
			got.SHA256, got.Size)
		if derr := to.Delete(ctx, got.SHA256); derr != nil {
			err = errors.Join(err, fmt.Errorf("transfer: remove the damaged copy %s: %w", got.SHA256, derr))
		}
		return err
	}
	return nil
}
