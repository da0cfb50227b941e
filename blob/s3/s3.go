// Package s3 stores blobs in an S3-compatible bucket, named by their SHA-256 under a key prefix, so several
// lodestone replicas share one copy of every firmware image, ELF file and crash dump.
//
// Content keys are <prefix>ab/cd/<sha256>. S3 makes an object visible only once it is whole, so a reader never
// sees a partial blob. A blob that fits in one part is hashed in memory and written straight to its content key;
// a larger one streams to <prefix>tmp/<random> as a multipart upload while it is hashed, is then copied server-side
// to its content key and the temporary object deleted. Memory per Put is one part, whatever the blob's size.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.BlobStore = (*Store)(nil)

// Defaults for the zero values of Config.
const (
	DefaultPartSize              = 16 << 20
	DefaultDialTimeout           = 10 * time.Second
	DefaultResponseHeaderTimeout = 2 * time.Minute
	DefaultOpenTimeout           = 15 * time.Second
	// TempGrace is how old a temporary object or unfinished upload must be before Open removes it: older than
	// any Put still running on another replica.
	TempGrace = 24 * time.Hour

	minPartSize = 5 << 20 // S3's smallest part other than the last
	maxPartSize = 5 << 30
	maxParts    = 10_000
)

// Config says where the bucket is and how to reach it.
type Config struct {
	Endpoint  string // host:port, without a scheme
	Secure    bool   // HTTPS
	Region    string // empty: asked of the server
	AccessKey string
	SecretKey string
	Bucket    string
	// Prefix is prepended to every key, e.g. "lodestone/blobs/"; a missing trailing slash is added.
	Prefix string
	// CreateBucket makes the bucket when it does not exist; otherwise Open fails on a missing bucket.
	CreateBucket bool
	// PartSize is the multipart part size and so the memory one Put holds (default 16 MiB, at least 5 MiB).
	// The largest blob is 10,000 parts.
	PartSize int64

	DialTimeout           time.Duration // TCP and TLS handshake
	ResponseHeaderTimeout time.Duration // from a request's last byte to the response headers
	// OpenTimeout bounds Open's first contact with the server, so an unreachable endpoint fails startup quickly.
	OpenTimeout time.Duration
}

// String describes the configuration without the secret key, so a Config can be logged.
func (c Config) String() string {
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("s3 bucket %q prefix %q at %s://%s", c.Bucket, c.Prefix, scheme, c.Endpoint)
}

// Validate checks the configuration and fills in defaults; Open calls it.
func (c *Config) Validate() error {
	if c.Endpoint == "" {
		return errors.New("s3: endpoint is required")
	}
	if strings.Contains(c.Endpoint, "/") {
		return fmt.Errorf("s3: endpoint %q must be host:port, without a scheme or path", c.Endpoint)
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("s3: bucket %q: %w", c.Bucket, err)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return errors.New("s3: set both the access key and the secret key, or neither")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "//") {
		return fmt.Errorf("s3: prefix %q must not start with / or contain //", c.Prefix)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(c.Prefix, "/"), "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("s3: prefix %q must not contain . or .. segments", c.Prefix)
		}
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.PartSize < minPartSize || c.PartSize > maxPartSize {
		return fmt.Errorf("s3: part size %d must be between %d and %d bytes", c.PartSize, minPartSize, maxPartSize)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ResponseHeaderTimeout <= 0 {
		c.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	return nil
}

// Store is a bucket (or a prefix of one) of blobs.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core // multipart calls, so Put controls its part buffers and hashes as it goes
	bufs   sync.Pool  // *[]byte of cfg.PartSize
}

// Open connects to the bucket, creating it if cfg.CreateBucket says so, and removes temporary objects and
// unfinished uploads older than TempGrace. It fails if the server cannot be reached within cfg.OpenTimeout.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	tr.DialContext = dialer.DialContext
	tr.TLSHandshakeTimeout = cfg.DialTimeout
	tr.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
	tr.ExpectContinueTimeout = time.Second
	tr.IdleConnTimeout = 90 * time.Second
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", cfg.Endpoint, err)
	}
	s := &Store{cfg: cfg, client: client, core: minio.Core{Client: client}}

	octx, cancel := context.WithTimeout(ctx, cfg.OpenTimeout)
	defer cancel()
	ok, err := client.BucketExists(octx, cfg.Bucket)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fmt.Errorf("s3: reach bucket %q at %s: no answer within %v", cfg.Bucket, cfg.Endpoint, cfg.OpenTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("s3: reach bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("s3: bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
		}
		err := client.MakeBucket(octx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return nil, fmt.Errorf("s3: create bucket %q: %w", cfg.Bucket, err)
		}
	}
	if _, err := s.Sweep(octx, TempGrace); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the configuration in effect, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// key is only ever built from a validated hex digest, never from other user input.
func (s *Store) key(sum string) string {
	return s.cfg.Prefix + sum[:2] + "/" + sum[2:4] + "/" + sum
}

func (s *Store) tmpPrefix() string { return s.cfg.Prefix + "tmp/" }

func notFound(sum string) error {
	return lodestone.Errorf(lodestone.ENOTFOUND, "blob %s not found", sum)
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket"
}

// Open implements lodestone.BlobStore. The blob reads through ranged GETs, so seeking costs one request and never
// downloads what is skipped.
func (s *Store) Open(ctx context.Context, sum string) (lodestone.Blob, error) {
	if !lodestone.ValidSHA256(sum) {
		return nil, notFound(sum)
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(sum), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, notFound(sum)
		}
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return &object{Object: obj, ref: lodestone.BlobRef{SHA256: sum, Size: info.Size}, mod: info.LastModified}, nil
}

type object struct {
	*minio.Object
	ref lodestone.BlobRef
	mod time.Time
}

func (o *object) Ref() lodestone.BlobRef { return o.ref }
func (o *object) ModTime() time.Time     { return o.mod }

// Stat implements lodestone.BlobStore.
func (s *Store) Stat(ctx context.Context, sum string) (lodestone.BlobRef, error) {
	if !lodestone.ValidSHA256(sum) {
		return lodestone.BlobRef{}, notFound(sum)
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(sum), minio.StatObjectOptions{})
	if isNotFound(err) {
		return lodestone.BlobRef{}, notFound(sum)
	} else if err != nil {
		return lodestone.BlobRef{}, fmt.Errorf("stat blob %s: %w", sum, err)
	}
	return lodestone.BlobRef{SHA256: sum, Size: info.Size}, nil
}

// Delete implements lodestone.BlobStore.
func (s *Store) Delete(ctx context.Context, sum string) error {
	if !lodestone.ValidSHA256(sum) {
		return nil
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(sum), minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete blob %s: %w", sum, err)
	}
	return nil
}

// Walk implements lodestone.BlobStore. Keys under the prefix that are not content keys (temporary objects,
// anything else sharing the prefix) are skipped.
func (s *Store) Walk(ctx context.Context, fn func(lodestone.BlobRef) error) error {
	ctx, cancel := context.WithCancel(ctx) // stops the listing if fn stops early
	defer cancel()
	for obj := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("list blobs: %w", obj.Err)
		}
		sum, ok := s.contentKey(obj.Key)
		if !ok {
			continue
		}
		if err := fn(lodestone.BlobRef{SHA256: sum, Size: obj.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// contentKey returns the digest a key names if it is a content key.
func (s *Store) contentKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.cfg.Prefix)
	if !ok || len(rest) != 6+64 {
		return "", false
	}
	sum := rest[6:]
	if !lodestone.ValidSHA256(sum) || rest[:6] != sum[:2]+"/"+sum[2:4]+"/" {
		return "", false
	}
	return sum, true
}

// Sweep removes temporary objects and aborts unfinished uploads under the prefix that are older than olderThan:
// what a Put interrupted by a crash leaves behind. It returns how many it removed.
func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	ctx, cancel := context.WithCancel(ctx) // stops the listings on an early return
	defer cancel()
	cutoff := time.Now().Add(-olderThan)
	n := 0
	for obj := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.tmpPrefix(), Recursive: true}) {
		if obj.Err != nil {
			return n, fmt.Errorf("s3: list temporary objects: %w", obj.Err)
		}
		if obj.LastModified.After(cutoff) {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("s3: remove temporary object: %w", err)
		}
		n++
	}
	for up := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, s.tmpPrefix(), true) {
		if up.Err != nil {
			return n, fmt.Errorf("s3: list unfinished uploads: %w", up.Err)
		}
		if up.Initiated.After(cutoff) {
			continue
		}
		if err := s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, up.Key, up.UploadID); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("s3: abort unfinished upload: %w", err)
		}
		n++
	}
	return n, nil
}
