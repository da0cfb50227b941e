package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/blobtest"
	"github.com/lodestone-fleet/lodestone/blob/s3"
	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
)

// config returns a store configuration for srv whose keys live under a prefix of their own, so every caller sees
// an empty store without starting another server.
func config(srv *s3test.Server) s3.Config {
	return s3.Config{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Bucket: srv.Bucket, Prefix: fmt.Sprintf("p%d/", prefixSeq.Add(1)),
		PartSize: 5 << 20, // the smallest S3 allows, so modest blobs take the multipart path
	}
}

var prefixSeq atomic.Int64

func open(t testing.TB, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	blobtest.Run(t, func(t *testing.T) lodestone.BlobStore { return open(t, config(srv)) })
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Blobs over one part take the multipart path: temporary key, server-side copy, temporary key removed. The
// limit is enforced there too, with nothing left behind.
func TestMultipartPut(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv))
	ctx := t.Context()
	part := int64(5 << 20)
	data := make([]byte, 2*part+123) // two full parts and a short one
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	for _, limit := range []int64{2 * part, 2*part + 122} { // refused in the loop and on the last part
		if _, _, err := s.Put(ctx, bytes.NewReader(data), limit); lodestone.ErrorCode(err) != lodestone.ETOOLARGE {
			t.Fatalf("Put over limit %d = %v, want too_large", limit, err)
		}
	}
	ref, existed, err := s.Put(ctx, bytes.NewReader(data), int64(len(data)))
	if err != nil || existed || ref.SHA256 != sum(data) || ref.Size != int64(len(data)) {
		t.Fatalf("Put = %+v %v %v", ref, existed, err)
	}
	if ref2, existed, err := s.Put(ctx, bytes.NewReader(data), 0); err != nil || !existed || ref2 != ref {
		t.Fatalf("second Put = %+v %v %v, want the same ref, existed", ref2, existed, err)
	}

	b, err := s.Open(ctx, ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Ref() != ref || time.Since(b.ModTime()) > time.Minute {
		t.Fatalf("Open ref %+v modtime %v", b.Ref(), b.ModTime())
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, err %v; want the %d bytes put", len(got), err, len(data))
	}
	// A range across the part boundary, as an HTTP Range request reads it.
	if _, err := b.Seek(part-3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	mid := make([]byte, 6)
	if _, err := io.ReadFull(b, mid); err != nil || !bytes.Equal(mid, data[part-3:part+3]) {
		t.Fatalf("range read %x %v, want %x", mid, err, data[part-3:part+3])
	}

	// Only the content key is left: no temporary object, no unfinished upload.
	var keys []string
	filepath.WalkDir(filepath.Join(srv.Dir, srv.Bucket), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			keys = append(keys, strings.TrimPrefix(p, filepath.Join(srv.Dir, srv.Bucket)+"/"))
		}
		return nil
	})
	want := s.Config().Prefix + ref.SHA256[:2] + "/" + ref.SHA256[2:4] + "/" + ref.SHA256
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("objects in the bucket: %v, want only %s", keys, want)
	}
	if n, err := s.Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("Sweep after clean Puts = %d, %v; want nothing to remove", n, err)
	}
}

// A Put whose context ends mid-upload aborts its upload and stores nothing.
func TestCancelMidUpload(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv))
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelAfter{n: 12 << 20, cancel: cancel}
	if _, _, err := s.Put(ctx, r, 0); err == nil {
		t.Fatal("Put with a context cancelled mid-upload succeeded")
	}
	n := 0
	s.Walk(t.Context(), func(lodestone.BlobRef) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d blobs after a cancelled Put", n)
	}
	if n, err := s.Sweep(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("Sweep found %d leftovers (%v): the cancelled Put did not clean up", n, err)
	}
}

// cancelAfter yields zero bytes and cancels its context once n bytes have been read.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		return len(p), nil
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	clear(p)
	c.n -= len(p)
	return len(p), nil
}

// What a crash between the upload and the move leaves, Sweep removes; fresher leftovers stay, since another
// replica may still be uploading them.
func TestSweep(t *testing.T) {
	srv := s3test.Start(t)
	cfg := config(srv)
	s := open(t, cfg)
	tmp := filepath.Join(srv.Dir, srv.Bucket, cfg.Prefix, "tmp")
	os.MkdirAll(tmp, 0o755)
	os.WriteFile(filepath.Join(tmp, "left-by-a-crash"), []byte("partial"), 0o644)
	// A crash mid-upload leaves an unfinished multipart upload.
	core, err := minio.NewCore(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.NewMultipartUpload(t.Context(), srv.Bucket, cfg.Prefix+"tmp/upload-cut-short", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(t.Context(), time.Hour); err != nil || n != 0 {
		t.Fatalf("Sweep of fresh leftovers = %d, %v; want them kept", n, err)
	}
	if n, err := s.Sweep(t.Context(), 0); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 removed", n, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "left-by-a-crash")); !os.IsNotExist(err) {
		t.Fatalf("leftover still there: %v", err)
	}
	if n, err := s.Sweep(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want nothing left", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := s3test.Start(t)
	good := config(srv)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		edit func(c *s3.Config)
		want string
	}{
		{"no endpoint", func(c *s3.Config) { c.Endpoint = "" }, "endpoint is required"},
		{"scheme in endpoint", func(c *s3.Config) { c.Endpoint = "http://" + c.Endpoint }, "without a scheme"},
		{"bad bucket", func(c *s3.Config) { c.Bucket = "Not_A_Bucket" }, "bucket"},
		{"half the credentials", func(c *s3.Config) { c.SecretKey = "" }, "both the access key and the secret key"},
		{"dot-dot prefix", func(c *s3.Config) { c.Prefix = "a/../b" }, "segments"},
		{"leading slash", func(c *s3.Config) { c.Prefix = "/a" }, "must not start with /"},
		{"tiny part", func(c *s3.Config) { c.PartSize = 1 << 20 }, "part size"},
		{"missing bucket", func(c *s3.Config) { c.Bucket = "no-such-bucket" }, `bucket "no-such-bucket" does not exist`},
		{"wrong secret", func(c *s3.Config) { c.SecretKey = "wrong" }, "reach bucket"},
		{"nothing listening", func(c *s3.Config) { c.Endpoint = closedPort(t); c.OpenTimeout = 2 * time.Second }, "no answer within 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			start := time.Now()
			_, err := s3.Open(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), good.SecretKey) {
				t.Fatalf("error shows the secret key: %v", err)
			}
			t.Log(err)
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("Open took %v to fail", d)
			}
		})
	}
	t.Run("create bucket", func(t *testing.T) {
		cfg := good
		cfg.Bucket, cfg.CreateBucket = "made-by-open", true
		s := open(t, cfg)
		if _, _, err := s.Put(ctx, strings.NewReader("x"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(srv.Dir, "made-by-open")); err != nil {
			t.Fatalf("bucket not created: %v", err)
		}
		open(t, cfg) // and opening it again is fine
	})
	if s := fmt.Sprint(good); strings.Contains(s, good.SecretKey) || !strings.Contains(s, good.Bucket) {
		t.Fatalf("Config prints as %q", s)
	}
}

func closedPort(t *testing.T) string {
	// A port that was free a moment ago; nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A blob serves HTTP range requests as firmware downloads will: http.ServeContent seeks from the end for the size
// and then to the range.
func TestServeRange(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv))
	data := bytes.Repeat([]byte("0123456789"), 700_000) // over one 5 MiB part
	ref, _, err := s.Put(t.Context(), bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Open(t.Context(), ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	req := httptest.NewRequest("GET", "/firmware.bin", nil)
	req.Header.Set("Range", "bytes=5242870-5242889")
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "firmware.bin", b.ModTime(), b)
	if rec.Code != http.StatusPartialContent || rec.Body.String() != string(data[5242870:5242890]) ||
		rec.Header().Get("Content-Range") != fmt.Sprintf("bytes 5242870-5242889/%d", len(data)) {
		t.Fatalf("range answer %d %q %q", rec.Code, rec.Header().Get("Content-Range"), rec.Body.String())
	}
}
