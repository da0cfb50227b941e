package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// The CLI uploads an ELF to a real serve, and serve's wiring symbolicates a fault of that firmware, with ELFs on
// disk and on S3 (where the index is built from a temporary copy rather than ranged reads).
func TestSymbolsUploadAndServeSymbolicates(t *testing.T) {
	t.Run("disk", func(t *testing.T) { testSymbolsUpload(t, nil) })
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t)
		testSymbolsUpload(t, []string{"--blobs", srv.URL("blobs")})
	})
}

func testSymbolsUpload(t *testing.T, serveArgs []string) {
	const pass = "symbols-test-pass"
	env := func(k string) string {
		if k == "BASIC_AUTH_PASS" {
			return pass
		}
		return ""
	}
	var serveLog bytes.Buffer
	ready := make(chan string, 1)
	c := &serveCmd{stdout: io.Discard, stderr: &serveLog, getenv: env, dir: t.TempDir(), ready: ready}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, append([]string{"--http", "127.0.0.1:0", "--data-dir", t.TempDir()}, serveArgs...))
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, serveLog.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	defer func() {
		cancel()
		if err := receive(t, done, time.Minute, "serve stopped after cancel"); err != nil {
			t.Error(err)
		}
	}()
	server := "http://" + addr
	elfPath := filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf")

	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"symbols", "upload", elfPath, "--version", "2.0.0", "--server", server,
		"--json"}, &stdout, &stderr, env); code != 0 {
		t.Fatalf("upload --json: %d %s", code, stderr.String())
	}
	var ans struct {
		OK  bool `json:"ok"`
		ELF struct {
			Version  string `json:"version"`
			BuildID  string `json:"build_id"`
			Filename string `json:"filename"`
		} `json:"elf"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &ans); err != nil || !ans.OK || ans.ELF.Version != "2.0.0" ||
		len(ans.ELF.BuildID) != 40 || ans.ELF.Filename != "firmware-O2.elf" {
		t.Fatalf("upload answer %q: %v", stdout.String(), err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), []string{"symbols", "upload", "--server", server, elfPath}, &stdout, &stderr,
		env); code != 0 || !strings.Contains(stdout.String(), "version 1.4.2") || stderr.Len() != 0 {
		// stderr is no terminal: no progress bar, only the summary on stdout.
		t.Fatalf("upload: %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.elf")
	os.WriteFile(bad, []byte("no elf"), 0o600)
	stderr.Reset()
	if code := run(t.Context(), []string{"symbols", "upload", bad, "--server", server}, io.Discard, &stderr,
		env); code != 1 || !strings.Contains(stderr.String(), "400") {
		t.Fatalf("bad upload: %d %s", code, stderr.String())
	}
	if code := run(t.Context(), []string{"symbols", "upload", elfPath, "--server", server}, io.Discard, &stderr,
		func(string) string { return "" }); code != 1 || !strings.Contains(stderr.String(), "401") {
		t.Fatalf("upload without credentials: %d %s", code, stderr.String())
	}

	// A fault from a device running 2.0.0, in write_register.
	f, err := elf.Open(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.Symbols()
	f.Close()
	var pc uint32
	for _, s := range syms {
		if s.Name == "write_register" {
			pc = uint32(s.Value &^ 1)
		}
	}
	info := chunk.DeviceInfo{DeviceID: "cli-dev", FirmwareVersion: "2.0.0"}.AppendPayload(nil)
	body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: info}.Encode()
	body = append(body, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 1,
		Payload: chunk.Fault{Type: 3, PC: pc, SP: 0x20001f00, CFSR: 1 << 25}.AppendPayload(nil)}.Encode()...)
	resp, err := http.Post(server+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ingest: %v %v", err, resp)
	}
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", server+"/faults", nil)
		req.SetBasicAuth("admin", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := string(raw)
		if strings.Contains(s, `"symbol_state":"done"`) && strings.Contains(s, `"function":"write_register"`) &&
			strings.Contains(s, `"DIVBYZERO"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault not symbolicated: %s", raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
