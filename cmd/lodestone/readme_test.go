package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeBlock is one ```sh example of the README.
type readmeBlock struct {
	line int    // of the opening fence
	skip string // the reason of a <!-- readme-test: skip (reason) --> marker before it; "" runs it
	code string
}

var skipMarker = regexp.MustCompile(`^<!-- readme-test: skip \((.+)\) -->$`)

// readmeBlocks extracts the README's shell examples and the skip marker, if any, on the line before each.
func readmeBlocks(t *testing.T, readme string) []readmeBlock {
	t.Helper()
	var blocks []readmeBlock
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```sh" {
			continue
		}
		b := readmeBlock{line: i + 1}
		if i > 0 && strings.HasPrefix(lines[i-1], "<!-- readme-test") {
			m := skipMarker.FindStringSubmatch(lines[i-1])
			if m == nil {
				t.Fatalf("README line %d: malformed marker %q; want <!-- readme-test: skip (reason) -->", i, lines[i-1])
			}
			b.skip = m[1]
		}
		var code []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			code = append(code, lines[i])
		}
		b.code = strings.Join(code, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks
}

// TestReadmeExamples runs every shell example of the README, in order, as a new user would: against the real
// binary serving from a fresh directory with its defaults (only the port differs: localhost:4000 in the text is
// the test's address), with the admin password the server generated on first start. A block fails on any error
// (bash -e, curl -f). Blocks marked <!-- readme-test: skip (reason) --> are left out.
func TestReadmeExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(readme))
	run, skipped := 0, 0
	for _, b := range blocks {
		if b.skip == "" {
			run++
		} else {
			skipped++
		}
	}
	if run < 8 || skipped > run {
		t.Fatalf("%d examples to run and %d skipped: the markers are meant to be rare", run, skipped)
	}

	bin := buildBinary(t)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// The working directory looks like the checkout (its files are linked in, read-only use) so that examples
	// naming repository files work, while whatever the examples write stays in the test's directory.
	work := t.TempDir()
	entries, err := os.ReadDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != ".git" && n != "lodestone-data" && n != "lodestone" && !strings.HasSuffix(n, ".db") {
			if err := os.Symlink(filepath.Join(repo, n), filepath.Join(work, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	addr := freeAddr(t)
	// HOME stays: go build in the build example uses the same build cache as this test.
	env := []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"), "TMPDIR=" + t.TempDir()}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GONOSUMDB", "GOTOOLCHAIN"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}

	srv := exec.Command(bin, "--http", addr) // the README's plain 'lodestone', on a free port
	srv.Dir, srv.Env = work, env
	log := &syncBuffer{}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		srv.Process.Kill()
		<-exited
	})
	password := waitGeneratedPassword(t, addr, log, exited)
	env = append(env, "PASSWORD="+password)

	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("README line %d skipped: %s", b.line, b.skip)
			continue
		}
		t.Logf("README line %d: running", b.line)
		code := strings.ReplaceAll(b.code, "http://localhost:4000", "http://"+addr)
		// One shell for the examples in order, as one terminal: what a block exports, the next one sees.
		script := "set -euo pipefail\n" + code + "\nexport -p > \"$READMETEST_ENV\"\n"
		envFile := filepath.Join(t.TempDir(), "env")
		prev := ""
		if data, err := os.ReadFile(filepath.Join(work, ".readme-env")); err == nil {
			prev = string(data)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", prev+"\n"+script)
		cmd.Dir, cmd.Env = work, append(env, "READMETEST_ENV="+envFile)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README line %d: %v\n--- example\n%s--- output\n%s--- server log\n%s", b.line, err, code,
				out, tail(log.String(), 3000))
		}
		if data, err := os.ReadFile(envFile); err == nil {
			if err := os.WriteFile(filepath.Join(work, ".readme-env"), filterEnv(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	// One device, one identity: the key registered alone and the DeviceInfo id its heartbeat came with are one
	// device holding the data, with no phantom A300F1B2.
	var list struct {
		Devices []struct {
			DeviceID  string  `json:"device_id"`
			DeviceKey *uint32 `json:"device_key"`
			Name      *string `json:"name"`
		} `json:"devices"`
	}
	if code := getJSON(t, "http://"+addr+"/devices", password, &list); code != 200 {
		t.Fatalf("GET /devices: %d", code)
	}
	if len(list.Devices) != 1 || list.Devices[0].DeviceID != "test-device" || list.Devices[0].DeviceKey == nil ||
		*list.Devices[0].DeviceKey != 0xA300F1B2 || list.Devices[0].Name == nil || *list.Devices[0].Name != "bench unit" {
		body, _ := json.Marshal(list)
		t.Fatalf("after the README's examples the devices are %s; want test-device alone, with key A300F1B2", body)
	}
}

// filterEnv keeps what the examples exported, without bash's own read-only variables.
func filterEnv(exported []byte) []byte {
	var keep []string
	for _, l := range strings.Split(string(exported), "\n") {
		name := strings.TrimPrefix(l, "declare -x ")
		if name == l {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		switch name {
		case "PATH", "PASSWORD", "BASIC_AUTH_PASS", "LODESTONE_SERVER", "LODESTONE_TOKEN":
			keep = append(keep, "export "+strings.TrimPrefix(l, "declare -x "))
		}
	}
	return []byte(strings.Join(keep, "\n") + "\n")
}

// waitGeneratedPassword waits for the server to answer /health and returns the admin password it printed.
func waitGeneratedPassword(t *testing.T, addr string, log *syncBuffer, exited <-chan error) string {
	t.Helper()
	re := regexp.MustCompile(`password: (\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if m := re.FindStringSubmatch(log.String()); resp.StatusCode == 200 && m != nil {
				return m[1]
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("lodestone exited during start: %v\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("lodestone did not start or print a generated password\n%s", log.String())
	return ""
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("…%s", s[len(s)-n:])
}
