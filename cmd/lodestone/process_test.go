package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// buildBinary compiles the real lodestone binary once per test run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lodestone-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "lodestone")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running lodestone process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, bin, dataDir string, env ...string) *proc {
	t.Helper()
	return startWith(t, bin, dataDir, nil, env...)
}

// startWith starts serve with extra flags.
func startWith(t *testing.T, bin, dataDir string, args []string, env ...string) *proc {
	t.Helper()
	p, err := tryStart(t, freeAddr(t), bin, dataDir, args, env...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryStart is startWith for goroutines other than the test's own, which must not call t.Fatal: it returns what
// went wrong instead. The process is killed when the test ends.
func tryStart(t *testing.T, addr, bin, dataDir string, args []string, env ...string) (*proc, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--http", addr, "--data-dir", dataDir}, args...)...)
	cmd.Dir = dataDir // no stray .env from the developer's tree
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p := &proc{cmd: cmd, addr: addr, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("lodestone exited during start: %v\n%s", err, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("lodestone did not become healthy\n%s", p.stderr.String())
}

var passwordLine = regexp.MustCompile(`(?m)^\s+password: (\S+)$`)

// session encodes one device session whose metric values identify the request.
func session(device string, n uint32) []byte {
	var b []byte
	b = chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: device, FirmwareVersion: "9.9.9", BuildID: 1}.AppendPayload(nil)}.AppendEncode(b)
	b = chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagLast, Seq: 1, Payload: chunk.AppendMetricsPayload(nil,
		[]chunk.Metric{chunk.CounterMetric("req", n, 1), chunk.GaugeMetric("g", 1.5, 2)})}.AppendEncode(b)
	b = chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast, Seq: 2,
		Payload: chunk.Heartbeat{UptimeTicks: uint64(n)}.AppendPayload(nil)}.AppendEncode(b)
	return b
}

func getJSON(t *testing.T, url, pass string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("admin", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestKillNineLosesNothingAcknowledged ingests from several clients, kills the server with SIGKILL while requests
// are in flight, restarts it on the same data and checks that every request that got a 2xx is stored.
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	p := start(t, bin, dir)

	m := passwordLine.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no generated password printed on first start:\n%s", p.stderr.String())
	}
	pass := m[1]

	type ack struct {
		device string
		n      uint32
	}
	var (
		mu     sync.Mutex
		acked  []ack
		count  atomic.Int64
		wg     sync.WaitGroup
		stopCh = make(chan struct{})
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := uint32(0); ; i++ {
				select {
				case <-stopCh:
					return
				default:
				}
				dev := fmt.Sprintf("kill-%d-%d", w, i)
				resp, err := client.Post("http://"+p.addr+"/ingest/chunks", "application/octet-stream",
					bytes.NewReader(session(dev, i)))
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, ack{dev, i})
					mu.Unlock()
					count.Add(1)
				}
			}
		}()
	}
	waitFor(t, 60*time.Second, "400 ingests acknowledged", func() bool { return count.Load() >= 400 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 15*time.Second)
	close(stopCh)
	wg.Wait()

	p2 := start(t, bin, dir)
	if strings.Contains(p2.stderr.String(), "password:") {
		t.Fatal("the generated password was printed again on restart")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests acknowledged before SIGKILL", len(acked))
	for _, a := range acked {
		var res struct {
			Metrics []struct {
				Key       string `json:"key"`
				ValueJSON string `json:"value_json"`
			} `json:"metrics"`
		}
		if s := getJSON(t, "http://"+p2.addr+"/devices/"+a.device+"/metrics", pass, &res); s != 200 {
			t.Fatalf("GET metrics of %s: %d", a.device, s)
		}
		want := fmt.Sprintf(`{"counter":%d}`, a.n)
		found := false
		for _, m := range res.Metrics {
			if m.Key == "req" && m.ValueJSON == want {
				found = true
			}
		}
		if !found || len(res.Metrics) != 2 {
			t.Fatalf("acknowledged request of %s lost after SIGKILL: %+v", a.device, res.Metrics)
		}
	}
}

func TestSIGTERMShutsDownGracefully(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	p := start(t, bin, dir, "BASIC_AUTH_PASS=pw")
	resp, err := http.Post("http://"+p.addr+"/ingest/chunks", "application/octet-stream",
		bytes.NewReader(session("graceful", 7)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ingest: %v %v", err, resp)
	}
	resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Fatalf("no clean stop logged:\n%s", p.stderr.String())
	}
	p2 := start(t, bin, dir, "BASIC_AUTH_PASS=pw")
	var d struct {
		Device struct {
			FirmwareVersion string `json:"firmware_version"`
		} `json:"device"`
	}
	if s := getJSON(t, "http://"+p2.addr+"/devices/graceful", "pw", &d); s != 200 || d.Device.FirmwareVersion != "9.9.9" {
		t.Fatalf("device after restart: %d %+v", s, d)
	}
}
