package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigPrecedence checks defaults < .env < environment < flags, and that ferrite's names are honoured.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	os.MkdirAll(sub, 0o755)
	// The .env sits in a parent directory, as ferrite allows.
	os.WriteFile(filepath.Join(dir, ".env"), []byte(
		"LODESTONE_HTTP=10.0.0.1:1\nINGEST_API_KEY=from-file\nRETENTION_DAYS=7\nBASIC_AUTH_PASS=file-pass\n"+
			"# comment\nALERT_OFFLINE_MINUTES=3\n"), 0o600)
	env := map[string]string{"INGEST_API_KEY": "from-env", "LODESTONE_HTTP": "10.0.0.2:2"}
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: sub}
	cfg, err := c.config([]string{"--http", "127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:9" {
		t.Fatalf("flag lost to env/file: %q", cfg.HTTP)
	}
	if cfg.IngestAPIKey != "from-env" {
		t.Fatalf("env lost to file: %q", cfg.IngestAPIKey)
	}
	if cfg.RetentionDays != 7 || cfg.BasicAuthPass != "file-pass" || cfg.AlertOfflineMinutes != 3 {
		t.Fatalf(".env not applied: %+v", cfg)
	}
	if cfg.MaxBody != 2<<20 || cfg.AttributionWindow != 30*time.Second || cfg.SQLiteSync != "FULL" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.DB != filepath.Join("lodestone-data", "lodestone.db") || cfg.ELFDir != "" || cfg.FirmwareDir != "" {
		t.Fatalf("derived paths: db %q elf %q firmware %q", cfg.DB, cfg.ELFDir, cfg.FirmwareDir)
	}
}

func TestConfigFerriteOrderAndErrors(t *testing.T) {
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, dir: t.TempDir()}
	// ferrite-server puts options before the subcommand.
	cfg, err := c.config([]string{"--db", "/tmp/x/ferrite.db", "serve", "--elf-dir", "/tmp/e"})
	if err != nil || cfg.DB != "/tmp/x/ferrite.db" || cfg.ELFDir != "/tmp/e" {
		t.Fatalf("ferrite order: %v %+v", err, cfg)
	}
	if cfg, err = c.config([]string{"--db", "sqlite:///tmp/y.db"}); err != nil || cfg.DB != "/tmp/y.db" {
		t.Fatalf("sqlite:// form: %v %q", err, cfg.DB)
	}
	for _, args := range [][]string{{"--sqlite-sync", "sometimes"}, {"bogus"}, {"--db", "mysql://x"},
		{"--max-body", "0"}} {
		if _, err := c.config(args); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	bad := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		if k == "RETENTION_DAYS" {
			return "ninety"
		}
		return ""
	}, dir: t.TempDir()}
	if _, err := bad.config(nil); err == nil || !strings.Contains(err.Error(), "RETENTION_DAYS") {
		t.Fatalf("bad RETENTION_DAYS: %v", err)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var out strings.Builder
		if code := run(t.Context(), args, &out, io.Discard, func(string) string { return "" }); code != 0 ||
			!strings.Contains(out.String(), "loadgen") || !strings.Contains(out.String(), "serve") {
			t.Fatalf("%v: code %d\n%s", args, code, out.String())
		}
	}
	var out strings.Builder
	if code := run(t.Context(), []string{"help", "serve"}, &out, io.Discard, func(string) string { return "" }); code != 0 ||
		!strings.Contains(out.String(), "INGEST_API_KEY") || !strings.Contains(out.String(), "--http") {
		t.Fatalf("help serve: %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"version"}, &out, io.Discard, nil); code != 0 || !strings.HasPrefix(out.String(), "lodestone ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(t.Context(), []string{"frobnicate"}, io.Discard, io.Discard, func(string) string { return "" }); code != 2 {
		t.Fatalf("unknown command exit code %d, want 2 (a usage error)", code)
	}
}

// --blobs follows the same precedence, its S3 credentials come from the AWS variables (also in .env), and a bad
// setting stops the configuration without echoing a secret.
func TestConfigBlobs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte(
		"LODESTONE_BLOBS=file:///from/file\nAWS_ACCESS_KEY_ID=file-key\nAWS_SECRET_ACCESS_KEY=file-secret\n"), 0o600)
	env := map[string]string{}
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: dir}
	cfg, err := c.config(nil)
	if err != nil || cfg.Blobs != "file:///from/file" || cfg.AWSAccessKeyID != "file-key" || cfg.AWSSecretAccessKey != "file-secret" {
		t.Fatalf(".env: %v %q %q", err, cfg.Blobs, cfg.AWSAccessKeyID)
	}
	env["LODESTONE_BLOBS"] = "s3://bucket/pre?endpoint=127.0.0.1:9000&secure=false"
	if cfg, err = c.config(nil); err != nil || cfg.Blobs != env["LODESTONE_BLOBS"] {
		t.Fatalf("env: %v %q", err, cfg.Blobs)
	}
	if cfg, err = c.config([]string{"--blobs", "file:///from/flag"}); err != nil || cfg.Blobs != "file:///from/flag" {
		t.Fatalf("flag: %v %q", err, cfg.Blobs)
	}
	if _, err := c.config([]string{"--blobs", "s3://key:hunter2@bucket/p?endpoint=h:1&bogus=1"}); err == nil ||
		!strings.Contains(err.Error(), "bogus") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad --blobs: %v", err)
	}
	noKeys := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, dir: t.TempDir()}
	if _, err := noKeys.config([]string{"--blobs", "s3://bucket/p"}); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("s3 without credentials: %v", err)
	}
}
