package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func TestMigrateAndCopyCommands(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "lodestone.db")
	src, err := sqlite.Open(ctx, file, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := src.WriteTelemetry(ctx, []*lodestone.DeviceBatch{
		{DeviceID: "a", ReceivedAt: at, Info: &lodestone.DeviceInfo{FirmwareVersion: "2.0.1"},
			Metrics: []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: 21}}},
		{DeviceID: "b", ReceivedAt: at, Faults: []lodestone.Fault{{FaultType: 1}}},
	}); err != nil {
		t.Fatal(err)
	}
	src.Close()
	url := pgtest.URL(t)

	// A fresh PostgreSQL database: nothing applied yet.
	code, out, stderr := runCmd(t, "migrate", "status", "--json", "--db", url)
	if code != 0 {
		t.Fatalf("migrate status: %d %s", code, stderr)
	}
	var st struct {
		Current, Latest int64
		Pending         []int64
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Current != 0 || st.Latest < 1 || len(st.Pending) == 0 {
		t.Fatalf("status of an empty database: %s %v", out, err)
	}
	if code, out, stderr = runCmd(t, "migrate", "up", "--db", url); code != 0 || !strings.Contains(out, "migrated from version 0") {
		t.Fatalf("migrate up: %d %q %s", code, out, stderr)
	}
	if code, out, _ = runCmd(t, "migrate", "up", "--db", url); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate up: %d %q", code, out)
	}

	code, out, stderr = runCmd(t, "copy", "--from", "sqlite://"+file, "--to", url)
	// stderr is no terminal: no progress bar, only warnings would go there.
	if code != 0 || !strings.Contains(out, "counts match") || strings.Contains(stderr, "records") {
		t.Fatalf("copy: %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "devices") || !strings.Contains(out, "2") {
		t.Fatalf("copy table: %s", out)
	}
	dst, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	d, err := dst.FindDeviceByID(ctx, "a")
	if err != nil || d.FirmwareVersion != "2.0.1" {
		t.Fatalf("device a after copy: %+v %v", d, err)
	}

	// Copying again would duplicate the instance: refused, with a reason.
	if code, _, stderr = runCmd(t, "copy", "--from", file, "--to", url); code == 0 || !strings.Contains(stderr, "not empty") {
		t.Fatalf("second copy: %d %s", code, stderr)
	}
	for _, args := range [][]string{
		{"copy", "--from", file},                           // no destination
		{"copy", "--from", file, "--to", "mysql://x/y"},    // not PostgreSQL
		{"copy", "--from", url, "--to", url},               // not SQLite
		{"migrate", "sideways"},                            // unknown action
		{"migrate", "status", "--db", "/nonexistent/x.db"}, // no such file
	} {
		if code, _, stderr := runCmd(t, args...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestCopyMovesBlobsToS3(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "lodestone.db")
	src, err := sqlite.Open(ctx, file, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	local, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []lodestone.BlobRef
	for _, body := range []string{"firmware image", strings.Repeat("elf", 100000)} {
		ref, _, err := local.Put(ctx, strings.NewReader(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	srv := s3test.Start(t)
	url := pgtest.URL(t)
	code, out, stderr := runCmd(t, "copy", "--data-dir", dir, "--to", url, "--to-blobs", srv.URL("moved"), "--json")
	if code != 0 {
		t.Fatalf("copy: %d %s", code, stderr)
	}
	var res struct {
		Blobs struct {
			Copied         int `json:"copied"`
			AlreadyPresent int `json:"already_present"`
		} `json:"blobs"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Blobs.Copied != 2 {
		t.Fatalf("copy result %s: %v", out, err)
	}
	remote, err := openBlobs(ctx, srv.URL("moved"), dir, s3Keys{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if got, err := remote.Stat(ctx, r.SHA256); err != nil || got != r {
			t.Fatalf("blob %s on S3: %+v %v", r.SHA256, got, err)
		}
	}
}
