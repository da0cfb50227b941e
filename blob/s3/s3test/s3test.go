// Package s3test runs a real S3-compatible server for tests: the Versity S3 gateway over a posix directory in
// the test's temporary directory, on a free loopback port. The gateway is a separate program that the tests run,
// never a library that lodestone links; .ci/build-s3-server builds it.
//
//	srv := s3test.Start(t)   // a fresh server with one empty bucket, stopped when the test ends
//	spec := srv.URL("blobs") // s3://… for lodestone's --blobs flag
//
// Without the binary a test skips, saying how to build it; with LODESTONE_REQUIRE_S3 set (as CI does) it fails.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables that steer Start.
const (
	// EnvBinary names the versitygw binary; unset, Start looks in the build script's cache and then in PATH.
	EnvBinary = "LODESTONE_TEST_S3_BIN"
	// EnvRequire makes a missing binary fail the test instead of skipping it.
	EnvRequire = "LODESTONE_REQUIRE_S3"
)

// Server is a running gateway with one empty bucket. Its fields are what a client needs.
type Server struct {
	Endpoint  string // 127.0.0.1:port, plain HTTP
	AccessKey string
	SecretKey string
	Region    string
	Bucket    string
	Dir       string // the gateway's posix root; the bucket is the directory Dir/Bucket
}

// URL returns the s3:// form of lodestone's --blobs setting for keys under prefix, credentials included.
func (s *Server) URL(prefix string) string {
	u := url.URL{
		Scheme:   "s3",
		User:     url.UserPassword(s.AccessKey, s.SecretKey),
		Host:     s.Bucket,
		Path:     "/" + strings.Trim(prefix, "/"),
		RawQuery: url.Values{"endpoint": {s.Endpoint}, "region": {s.Region}, "secure": {"false"}}.Encode(),
	}
	return u.String()
}

// Binary returns the path of the versitygw binary, or an error saying how to build it.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir := os.Getenv("LODESTONE_TEST_BIN")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".cache", "lodestone-test-bin")
		}
	}
	if dir != "" {
		if p := filepath.Join(dir, "versitygw"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("the Versity S3 gateway is not built: run .ci/build-s3-server or set " + EnvBinary)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start runs a gateway for the rest of the test and returns it with an empty bucket. Each call is a separate
// server with its own directory and credentials.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) != "" {
			tb.Fatalf("s3test: %v (%s is set)", err, EnvRequire)
		}
		tb.Skipf("s3test: %v", err)
	}
	s := &Server{
		AccessKey: "lodestone" + randomHex(4),
		SecretKey: randomHex(16),
		Region:    "us-east-1",
		Bucket:    "lodestone-test",
		Dir:       tb.TempDir(),
	}
	// The port is free when chosen but could be taken before the gateway binds it; try again if so.
	for attempt := 1; ; attempt++ {
		err = s.start(tb, bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			tb.Fatalf("s3test: %v", err)
		}
	}
	if err := s.makeBucket(); err != nil {
		tb.Fatalf("s3test: %v", err)
	}
	return s
}

func (s *Server) start(tb testing.TB, bin string) error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(tb.TempDir(), "versitygw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("gateway log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region, "--quiet", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")} // nothing from the caller's environment reaches it
	setParentDeath(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	if err := waitReady(addr, exited); err != nil {
		stop()
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("gateway on %s: %w\n%s", addr, err, tail(out, 2000))
	}
	tb.Cleanup(stop)
	s.Endpoint = addr
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady waits until the gateway answers HTTP (any status: an unsigned request is refused, which is fine).
func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("gateway exited: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("gateway did not answer within 30s")
}

func (s *Server) makeBucket() error {
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: s.Region})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		return fmt.Errorf("create bucket %s: %w", s.Bucket, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
