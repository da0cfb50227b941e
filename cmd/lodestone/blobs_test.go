package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
)

// putOne stores a blob through st and returns the path-style key it lands under (ab/cd/<sha>).
func putOne(t *testing.T, st lodestone.BlobStore) string {
	t.Helper()
	ref, _, err := st.Put(t.Context(), strings.NewReader("firmware image"), 0)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(ref.SHA256[:2], ref.SHA256[2:4], ref.SHA256)
}

func TestOpenBlobsForms(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := t.Context()

	t.Run("default under the data dir", func(t *testing.T) {
		data := t.TempDir()
		st, err := openBlobs(ctx, "", data, s3Keys{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(data, "blobs", putOne(t, st))); err != nil {
			t.Fatalf("blob not under <data-dir>/blobs: %v", err)
		}
	})

	t.Run("file URL", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "elsewhere")
		st, err := openBlobs(ctx, "file://"+dir, t.TempDir(), s3Keys{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, putOne(t, st))); err != nil {
			t.Fatalf("blob not under %s: %v", dir, err)
		}
	})

	srv := s3test.Start(t)
	t.Run("s3 with credentials in the URL", func(t *testing.T) {
		st, err := openBlobs(ctx, srv.URL("fleet/blobs"), t.TempDir(), s3Keys{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(srv.Dir, srv.Bucket, "fleet", "blobs", putOne(t, st))); err != nil {
			t.Fatalf("blob not in the bucket under the prefix: %v", err)
		}
	})

	t.Run("s3 with credentials from the environment, bucket created", func(t *testing.T) {
		spec := "s3://new-bucket?endpoint=" + srv.Endpoint + "&secure=false&create=true&region=" + srv.Region
		st, err := openBlobs(ctx, spec, t.TempDir(), s3Keys{srv.AccessKey, srv.SecretKey}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(srv.Dir, "new-bucket", putOne(t, st))); err != nil {
			t.Fatalf("blob not at the bucket root: %v", err)
		}
	})

	if strings.Contains(logs.String(), srv.SecretKey) || !strings.Contains(logs.String(), "new-bucket") {
		t.Fatalf("log shows a secret or misses the store:\n%s", logs.String())
	}
}

func TestOpenBlobsErrors(t *testing.T) {
	keys := s3Keys{"AKIDEXAMPLE", "topsecret"}
	for _, tc := range []struct{ spec, want string }{
		{"/var/blobs", "not a URL"},
		{"blobs", "not a URL"},
		{"%zz://topsecret", "not a URL"},
		{"ftp://host/x", `scheme "ftp" is not supported`},
		{"file://relative/path", "file:///absolute/path"},
		{"file:///x?y=1", "file:///absolute/path"},
		{"s3:///prefix", "bucket is missing"},
		{"s3://Bad_Bucket/p", "invalid characters"},
		{"s3://bkt/p?endpoint=h:1&secure=maybe", "secure must be true or false"},
		{"s3://bkt/p?endpint=h:1", `unknown parameter "endpint"`},
		{"s3://bkt/p?endpoint=http://h:1", "without a scheme"},
		{"s3://bkt/a/../b?endpoint=h:1", ". or .. segments"},
		{"s3://onlyuser@bkt/p", "access-key:secret-key"},
		{"s3://AKID:topsecret@bkt/p?endpoint=h:1&bogus=1", "xxxxx"}, // the URL is shown redacted
	} {
		_, err := openBlobs(t.Context(), tc.spec, t.TempDir(), keys, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("openBlobs(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("openBlobs(%q) error shows the secret: %v", tc.spec, err)
		}
	}
	if _, err := openBlobs(t.Context(), "s3://bkt/p", t.TempDir(), s3Keys{}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("no credentials: %v", err)
	}
}

// An unreachable S3 server stops startup promptly with a message naming what it could not reach.
func TestOpenBlobsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	spec := "s3://AKID:" + url.QueryEscape("top/secret") + "@fleet/blobs?secure=false&endpoint=" + addr
	start := time.Now()
	_, err = openBlobs(ctx, spec, t.TempDir(), s3Keys{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), `reach bucket "fleet" at `+addr) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("openBlobs = %v, want a reach-bucket error without the secret", err)
	}
	t.Log(err)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}

// serve opens the configured store before it listens: it starts on S3 and refuses to start without it.
func TestServeOpensBlobs(t *testing.T) {
	srv := s3test.Start(t)
	var stderr bytes.Buffer
	ready := make(chan string, 1)
	c := &serveCmd{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }, dir: t.TempDir(), ready: ready}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, []string{"--http", "127.0.0.1:0", "--data-dir", t.TempDir(), "--blobs", srv.URL("blobs")})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	cancel()
	if err := receive(t, done, time.Minute, "serve stopped after cancel"); err != nil {
		t.Fatal(err)
	}
	if out := stderr.String(); !strings.Contains(out, `blob store opened`) || strings.Contains(out, srv.SecretKey) {
		t.Fatalf("serve log:\n%s", out)
	}

	c = &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, dir: t.TempDir()}
	missing := strings.Replace(srv.URL(""), "@"+srv.Bucket, "@missing-bucket", 1)
	err := c.Run(t.Context(), []string{"--http", "127.0.0.1:0", "--data-dir", t.TempDir(), "--blobs", missing})
	if err == nil || !strings.Contains(err.Error(), `bucket "missing-bucket" does not exist`) {
		t.Fatalf("serve with a missing bucket = %v, want it to refuse to start", err)
	}
}
