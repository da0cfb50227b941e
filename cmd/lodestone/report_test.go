package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/chunk"
)

const cliPass = "cli-test-pass"

func cliEnv(k string) string {
	if k == "BASIC_AUTH_PASS" {
		return cliPass
	}
	return ""
}

// serveInProcess runs serve on dataDir until the test ends and returns its base URL.
func serveInProcess(t *testing.T, dataDir string, args ...string) (url string, stop func()) {
	t.Helper()
	var log syncBuffer
	ready := make(chan string, 1)
	c := &serveCmd{stdout: io.Discard, stderr: &log, getenv: cliEnv, dir: t.TempDir(), ready: ready}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, append([]string{"--http", "127.0.0.1:0", "--data-dir", dataDir}, args...)) }()
	select {
	case addr := <-ready:
		url = "http://" + addr
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := receive(t, done, time.Minute, "serve stopped after cancel"); err != nil {
			t.Errorf("serve: %v\n%s", err, log.String())
		}
	}
	t.Cleanup(stop)
	return url, stop
}

// fleetSession is one device session with every record a report counts: metrics, a reboot and, for odd n, a
// fault with a recognisable PC.
func fleetSession(device string, n uint32) []byte {
	b := session(device, n) // DeviceInfo, 2 metrics, heartbeat
	b = chunk.Chunk{Type: chunk.TypeRebootReason, Flags: chunk.FlagLast, Seq: 3,
		Payload: chunk.Reboot{Reason: 3, BootSequence: n}.AppendPayload(nil)}.AppendEncode(b)
	if n%2 == 1 {
		b = chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 4,
			Payload: chunk.Fault{Type: 2, PC: 0x08000000 + n, LR: 0xFFFFFFF9}.AppendPayload(nil)}.AppendEncode(b)
	}
	return b
}

func postSession(t *testing.T, url string, body []byte) {
	t.Helper()
	resp, err := http.Post(url+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest: %d %s", resp.StatusCode, raw)
	}
}

// runCLI runs one lodestone command with the test's credentials.
func runCLI(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb, cliEnv); code != 0 {
		t.Fatalf("lodestone %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestReportCommandsLocalAndRemote runs report, faults and metrics against a live server's database file (read
// only, while it serves) and against the server over HTTP, and expects the same answers from both.
func TestReportCommandsLocalAndRemote(t *testing.T) {
	dir := t.TempDir()
	url, _ := serveInProcess(t, dir)
	local := []string{"--data-dir", dir}
	remote := []string{"--server", url}

	// Empty fleet: ferrite's messages.
	for cmd, want := range map[string]string{"report": "No devices registered.", "faults": "No fault events recorded.",
		"metrics": "No metrics recorded."} {
		for _, mode := range [][]string{local, remote} {
			if out, _ := runCLI(t, append([]string{cmd}, mode...)...); strings.TrimSpace(out) != want {
				t.Fatalf("%s %v on an empty fleet: %q", cmd, mode, out)
			}
		}
	}

	// Three devices: sensor-1 sends 3 sessions (2 with faults), sensor-2 one, ünïcode-3 two.
	n := uint32(0)
	for _, d := range []struct {
		id       string
		sessions int
	}{{"sensor-1", 3}, {"sensor-2", 1}, {"ünïcode-3-with-a-long-name", 2}} {
		for range d.sessions {
			n++
			postSession(t, url, fleetSession(d.id, n))
		}
	}

	for _, cmd := range []string{"report", "faults", "metrics"} {
		lj, _ := runCLI(t, append([]string{cmd, "--json"}, local...)...)
		rj, _ := runCLI(t, append([]string{cmd, "--json"}, remote...)...)
		if lj != rj {
			t.Fatalf("%s --json differs:\nlocal  %s\nremote %s", cmd, lj, rj)
		}
		// Equal is not enough: two empty or broken answers are equal too.
		var v map[string][]json.RawMessage
		if err := json.Unmarshal([]byte(lj), &v); err != nil || len(v) == 0 {
			t.Fatalf("%s --json: %v\n%s", cmd, err, lj)
		}
		for k, rows := range v {
			if len(rows) == 0 {
				t.Fatalf("%s --json: no %s on a fleet of three devices:\n%s", cmd, k, lj)
			}
		}
	}

	var rep struct {
		Devices []reportDevice `json:"devices"`
	}
	out, _ := runCLI(t, append([]string{"report", "--json"}, remote...)...)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int64{"sensor-1": {2, 6, 3}, "sensor-2": {0, 2, 1}, "ünïcode-3-with-a-long-name": {1, 4, 2}}
	if len(rep.Devices) != 3 {
		t.Fatalf("report: %s", out)
	}
	for _, d := range rep.Devices {
		if w := want[d.DeviceID]; [3]int64{d.FaultCount, d.MetricCount, d.RebootCount} != w ||
			d.FirmwareVersion != "9.9.9" || d.BuildID != 1 || d.Status != "online" {
			t.Errorf("report row %+v, want counts %v", d, w)
		}
	}
	if rep.Devices[0].DeviceID != "ünïcode-3-with-a-long-name" {
		t.Errorf("report is not ordered by last contact: %s", out)
	}

	// Tables.
	text, _ := runCLI(t, append([]string{"report"}, local...)...)
	for _, s := range []string{"Device ID", "Build ID", "Last Seen", "sensor-1", "0x1", "ünïcode-3-with-a-long-name",
		"Total devices: 3"} {
		if !strings.Contains(text, s) {
			t.Errorf("report table lacks %q:\n%s", s, text)
		}
	}
	text, _ = runCLI(t, append([]string{"faults", "--device", "sensor-1"}, remote...)...)
	for _, s := range []string{"Device", "Type", "PC", "LR", "Symbol", "BusFault", "0x08000003", "0x08000001",
		"0xFFFFFFF9", "Showing 2 fault event(s)."} {
		if !strings.Contains(text, s) {
			t.Errorf("faults table lacks %q:\n%s", s, text)
		}
	}
	text, _ = runCLI(t, append([]string{"metrics", "--key", "req", "--limit", "2", "--since", "1h"}, local...)...)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 5 || !strings.Contains(text, "Counter") || !strings.Contains(text, "Showing 2 metric row(s).") {
		t.Errorf("metrics table:\n%s", text)
	}
	// Columns line up on screen: every row starts its Key column at the header's character offset.
	col := strings.Index(lines[0], "Key")
	for _, l := range lines[1:3] {
		if r := []rune(l); len(r) < col+3 || string(r[col:col+3]) != "req" {
			t.Errorf("misaligned row %q (Key at %d)", l, col)
		}
	}
	// A future --since finds nothing, in both modes.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, mode := range [][]string{local, remote} {
		if out, _ := runCLI(t, append([]string{"faults", "--since", future}, mode...)...); !strings.Contains(out, "No fault events") {
			t.Errorf("faults --since the future %v: %q", mode, out)
		}
	}
}

func TestReportCommandErrors(t *testing.T) {
	dir := t.TempDir()
	url, _ := serveInProcess(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--data-dir", filepath.Join(dir, "nowhere")}, "no such file"},
		{[]string{"faults", "--data-dir", dir, "--limit", "0"}, "--limit must be between 1 and 1000"},
		{[]string{"metrics", "--data-dir", dir, "--since", "yesterday"}, "want a duration"},
		{[]string{"report", "--server", url, "--token", "lst_wrong"}, "401"},
		{[]string{"report", "--data-dir", dir, "extra"}, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb, func(string) string { return "" })
		if code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errb.String(), tc.want)
		}
	}
	// A read never creates a database.
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Fatalf("reading a missing database created something: %v", err)
	}
}
