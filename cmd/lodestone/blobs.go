package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/blob/s3"
)

const blobsUsage = "want empty (files under <data-dir>/blobs), file:///absolute/path or " +
	"s3://bucket/prefix?endpoint=host:port&region=R&secure=false&create=true"

// s3Keys are the S3 credentials from the environment, used when the s3:// URL carries none.
type s3Keys struct {
	AccessKey, SecretKey string
}

// blobSpec is a parsed --blobs setting: a directory or an S3 configuration.
type blobSpec struct {
	dir string
	s3  *s3.Config
}

// String names the store without credentials, for logs.
func (b blobSpec) String() string {
	if b.s3 != nil {
		return b.s3.String()
	}
	return "directory " + b.dir
}

// parseBlobs reads --blobs. It never puts the setting itself in an error: it may hold a secret key.
func parseBlobs(spec, dataDir string, keys s3Keys) (blobSpec, error) {
	if spec == "" {
		return blobSpec{dir: filepath.Join(dataDir, "blobs")}, nil
	}
	u, err := url.Parse(spec)
	if err != nil || u.Scheme == "" {
		return blobSpec{}, fmt.Errorf("--blobs is not a URL: %s", blobsUsage)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" || u.User != nil || u.RawQuery != "" || u.Opaque != "" ||
			!filepath.IsAbs(u.Path) {
			return blobSpec{}, fmt.Errorf("--blobs file URL must be file:///absolute/path")
		}
		return blobSpec{dir: filepath.Clean(u.Path)}, nil
	case "s3":
		cfg, err := parseS3(u, keys)
		if err != nil {
			return blobSpec{}, fmt.Errorf("--blobs %s: %w", u.Redacted(), err)
		}
		return blobSpec{s3: cfg}, nil
	}
	return blobSpec{}, fmt.Errorf("--blobs scheme %q is not supported: %s", u.Scheme, blobsUsage)
}

func parseS3(u *url.URL, keys s3Keys) (*s3.Config, error) {
	cfg := &s3.Config{
		Endpoint:  "s3.amazonaws.com",
		Secure:    true,
		Bucket:    u.Host,
		Prefix:    strings.Trim(u.Path, "/"),
		AccessKey: keys.AccessKey,
		SecretKey: keys.SecretKey,
	}
	if cfg.Bucket == "" {
		return nil, errors.New("the bucket is missing (s3://bucket/prefix)")
	}
	for k, v := range u.Query() {
		var err error
		switch k {
		case "endpoint":
			cfg.Endpoint = v[0]
		case "region":
			cfg.Region = v[0]
		case "secure":
			cfg.Secure, err = strconv.ParseBool(v[0])
		case "create":
			cfg.CreateBucket, err = strconv.ParseBool(v[0])
		default:
			return nil, fmt.Errorf("unknown parameter %q (known: endpoint, region, secure, create)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("%s must be true or false, got %q", k, v[0])
		}
	}
	if u.User != nil {
		pass, ok := u.User.Password()
		if !ok || u.User.Username() == "" || pass == "" {
			return nil, errors.New("credentials in the URL must be access-key:secret-key")
		}
		cfg.AccessKey, cfg.SecretKey = u.User.Username(), pass
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openBlobs opens the blob store --blobs names and logs where it is (never the credentials). An S3 store is
// contacted now, so a wrong or unreachable bucket stops startup instead of failing the first upload.
func openBlobs(ctx context.Context, spec, dataDir string, keys s3Keys, log *slog.Logger) (lodestone.BlobStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := parseBlobs(spec, dataDir, keys)
	if err != nil {
		return nil, err
	}
	var st lodestone.BlobStore
	if b.s3 != nil {
		st, err = s3.Open(ctx, *b.s3)
	} else {
		st, err = disk.Open(b.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("blob store (--blobs): %w", err)
	}
	log.Info("blob store opened", "at", b.String())
	return st, nil
}
