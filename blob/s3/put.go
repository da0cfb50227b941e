package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lodestone-fleet/lodestone"
)

// cleanupTimeout bounds the requests that undo a failed Put; they run even when the Put's context is cancelled.
const cleanupTimeout = 30 * time.Second

// Put implements lodestone.BlobStore. It holds at most one part in memory: a blob that fits in one part goes to
// its content key in a single PUT; a larger one is uploaded part by part to a temporary key while it is hashed,
// then copied server-side to its content key. Every request carries the SHA-256 of its body, so the server
// rejects bytes damaged on the way.
func (s *Store) Put(ctx context.Context, r io.Reader, maxSize int64) (lodestone.BlobRef, bool, error) {
	if err := ctx.Err(); err != nil {
		return lodestone.BlobRef{}, false, err
	}
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	src = ctxReader{ctx, src}
	buf := s.getBuf()
	defer s.bufs.Put(&buf)
	n, err := io.ReadFull(src, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putSmall(ctx, buf[:n], maxSize)
	case err != nil:
		return lodestone.BlobRef{}, false, fmt.Errorf("read blob: %w", err)
	}
	return s.putLarge(ctx, src, buf, maxSize)
}

func tooLarge(maxSize int64) error {
	return lodestone.Errorf(lodestone.ETOOLARGE, "blob exceeds %d bytes", maxSize)
}

func (s *Store) putSmall(ctx context.Context, data []byte, maxSize int64) (lodestone.BlobRef, bool, error) {
	if maxSize > 0 && int64(len(data)) > maxSize {
		return lodestone.BlobRef{}, false, tooLarge(maxSize)
	}
	h := sha256.Sum256(data)
	ref := lodestone.BlobRef{SHA256: hex.EncodeToString(h[:]), Size: int64(len(data))}
	if existed, err := s.exists(ctx, ref.SHA256); err != nil || existed {
		return ref, existed, err
	}
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.key(ref.SHA256), bytes.NewReader(data), ref.Size, "", ref.SHA256,
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("store blob %s: %w", ref.SHA256, err)
	}
	return ref, false, nil
}

func (s *Store) exists(ctx context.Context, sum string) (bool, error) {
	_, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(sum), minio.StatObjectOptions{})
	if isNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("stat blob %s: %w", sum, err)
	}
	return true, nil
}

// putLarge uploads first (already read, full) and the rest of src as a multipart upload to a temporary key, then
// moves it to its content key. Reading and hashing the next part overlaps the upload of the previous one, so it
// holds two parts.
func (s *Store) putLarge(ctx context.Context, src io.Reader, first []byte, maxSize int64) (ref lodestone.BlobRef, existed bool, err error) {
	tmp, err := s.tmpKey()
	if err != nil {
		return lodestone.BlobRef{}, false, err
	}
	uploadID, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, tmp, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("start blob upload: %w", err)
	}
	uctx, stopUploads := context.WithCancel(ctx)
	var pending chan partResult   // the upload in flight, if any
	bufs := [2][]byte{first, nil} // Put returns first to the pool
	completed := false
	defer func() {
		stopUploads()
		if pending != nil {
			<-pending
		}
		if bufs[1] != nil {
			s.bufs.Put(&bufs[1])
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if !completed {
			s.core.AbortMultipartUpload(cctx, s.cfg.Bucket, tmp, uploadID)
			return
		}
		// The temporary object goes whether the move succeeded or not; Sweep catches it if this fails too.
		s.client.RemoveObject(cctx, s.cfg.Bucket, tmp, minio.RemoveObjectOptions{})
	}()
	// wait collects the upload in flight.
	var parts []minio.CompletePart
	wait := func() error {
		if pending == nil {
			return nil
		}
		r := <-pending
		pending = nil
		if r.err != nil {
			return fmt.Errorf("upload blob part %d: %w", len(parts)+1, r.err)
		}
		parts = append(parts, r.part)
		return nil
	}

	h := sha256.New()
	n := len(first)
	var size int64
	for i := 0; ; i++ {
		part := bufs[i%2][:n]
		h.Write(part)
		size += int64(n)
		if maxSize > 0 && size > maxSize {
			return lodestone.BlobRef{}, false, tooLarge(maxSize)
		}
		if i == maxParts {
			return lodestone.BlobRef{}, false, lodestone.Errorf(lodestone.ETOOLARGE,
				"blob exceeds %d parts of %d bytes", maxParts, s.cfg.PartSize)
		}
		ps := sha256.Sum256(part)
		if err := wait(); err != nil { // frees the other buffer
			return lodestone.BlobRef{}, false, err
		}
		pending = make(chan partResult, 1)
		go func(num int, part []byte, sum string) {
			p, err := s.core.PutObjectPart(uctx, s.cfg.Bucket, tmp, uploadID, num, bytes.NewReader(part), int64(len(part)),
				minio.PutObjectPartOptions{Sha256Hex: sum, DisableContentSha256: true})
			pending <- partResult{minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag}, err}
		}(i+1, part, hex.EncodeToString(ps[:]))

		next := &bufs[(i+1)%2]
		if *next == nil {
			*next = s.getBuf()
		}
		n, err = io.ReadFull(src, *next)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return lodestone.BlobRef{}, false, fmt.Errorf("read blob: %w", err)
		}
	}
	if err := wait(); err != nil {
		return lodestone.BlobRef{}, false, err
	}
	ref = lodestone.BlobRef{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, tmp, uploadID, parts, minio.PutObjectOptions{}); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("finish blob upload: %w", err)
	}
	completed = true

	if existed, err := s.exists(ctx, ref.SHA256); err != nil || existed {
		return ref, existed, err
	}
	if err := s.move(ctx, tmp, ref); err != nil {
		return lodestone.BlobRef{}, false, fmt.Errorf("store blob %s: %w", ref.SHA256, err)
	}
	return ref, false, nil
}

type partResult struct {
	part minio.CompletePart
	err  error
}

// move copies the temporary object to its content key on the server. S3 copies at most 5 GiB in one request;
// beyond that the copy is a multipart upload of ranged part copies.
func (s *Store) move(ctx context.Context, tmp string, ref lodestone.BlobRef) error {
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.key(ref.SHA256)}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: tmp}
	var err error
	if ref.Size <= maxPartSize {
		_, err = s.client.CopyObject(ctx, dst, src)
	} else {
		_, err = s.client.ComposeObject(ctx, dst, src)
	}
	return err
}

// getBuf returns a part buffer; they are pooled so that a stream of small Puts does not allocate a part each.
func (s *Store) getBuf() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, s.cfg.PartSize)
}

func (s *Store) tmpKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("temporary blob name: %w", err)
	}
	return s.tmpPrefix() + hex.EncodeToString(b[:]), nil
}

// ctxReader stops a long upload when the request that feeds it is cancelled.
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
