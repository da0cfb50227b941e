package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// sseEvent is one event read from /events/stream.
type sseEvent struct{ typ, data string }

// subscribe reads a replica's event stream into a channel until the test ends.
func subscribe(t *testing.T, addr, pass string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/events/stream", nil)
	req.SetBasicAuth("admin", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("event stream: HTTP %d", resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				ev.typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			case line == "":
				if ev.typ != "" {
					select {
					case out <- ev:
					default:
					}
				}
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func waitEvent(t *testing.T, events <-chan sseEvent, typ, device string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("event stream ended before a %s event for %s", typ, device)
			}
			if e.typ == typ && strings.Contains(e.data, `"`+device+`"`) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event for %s within %v", typ, device, within)
		}
	}
}

// leaders asks every live replica whether it leads the periodic jobs.
func leaders(t *testing.T, ps []*proc, pass string) []int {
	t.Helper()
	var out []int
	for i, p := range ps {
		if p == nil {
			continue
		}
		var body struct {
			Leader bool `json:"leader"`
		}
		if code := getJSON(t, "http://"+p.addr+"/readyz", pass, &body); code == 200 && body.Leader {
			out = append(out, i)
		}
	}
	return out
}

func waitOneLeader(t *testing.T, ps []*proc, pass string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		l := leaders(t, ps, pass)
		if len(l) > 1 {
			t.Fatalf("replicas %v all lead the periodic jobs", l)
		}
		if len(l) == 1 {
			return l[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no replica took the lead within %v", within)
	return -1
}

func post(t *testing.T, addr string, body []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest on %s: HTTP %d", addr, resp.StatusCode)
	}
}

// TestThreeReplicas runs three real lodestone processes against one PostgreSQL database and one S3 bucket: data
// ingested on one replica is read on the others, live events cross replicas, and exactly one replica runs the
// periodic jobs, with the lead moving when that replica is killed.
func TestThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	db := pgtest.URL(t)
	s3 := s3test.Start(t)
	bin := buildBinary(t)
	const pass = "cluster-secret"
	env := []string{"LODESTONE_DB=" + db, "LODESTONE_BLOBS=" + s3.URL("cluster"), "BASIC_AUTH_PASS=" + pass}
	args := []string{"--offline-after", "1500ms", "--jobs-interval", "200ms", "--leader-retry", "200ms"}
	ps := make([]*proc, 3)
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i := range ps {
		addr, dir := freeAddr(t), t.TempDir()
		wg.Go(func() { // replicas start together: their migrations must take turns
			ps[i], errs[i] = tryStart(t, addr, bin, dir, args, env...)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	a, b, c := ps[0], ps[1], ps[2]

	// A live subscriber on B sees what A ingests.
	events := subscribe(t, b.addr, pass)
	post(t, a.addr, session("dev-a", 7))
	waitEvent(t, events, "heartbeat", "dev-a", 10*time.Second)

	// What A acknowledged is readable through B and C.
	var dev struct {
		Device struct {
			DeviceID        string `json:"device_id"`
			FirmwareVersion string `json:"firmware_version"`
		} `json:"device"`
	}
	if code := getJSON(t, "http://"+b.addr+"/devices/dev-a", pass, &dev); code != 200 || dev.Device.FirmwareVersion != "9.9.9" {
		t.Fatalf("device on B: HTTP %d %+v", code, dev)
	}
	var wrapped struct {
		Metrics []map[string]any `json:"metrics"`
	}
	if code := getJSON(t, "http://"+c.addr+"/devices/dev-a/metrics", pass, &wrapped); code != 200 || len(wrapped.Metrics) != 2 {
		t.Fatalf("metrics on C: HTTP %d %v", code, wrapped)
	}

	// An ELF uploaded through A lands in the shared bucket; a fault posted to B is symbolicated against it, and C
	// shows the result.
	elfPath := filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf")
	image, err := os.ReadFile(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/ingest/elf", bytes.NewReader(image))
	req.SetBasicAuth("admin", pass)
	req.Header.Set("X-Firmware-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("ELF upload on A: %v %v", err, resp)
	}
	resp.Body.Close()
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
	fault := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: "dev-crash", FirmwareVersion: "2.0.0"}.AppendPayload(nil)}.Encode()
	fault = append(fault, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 1,
		Payload: chunk.Fault{Type: 3, PC: pc, SP: 0x20001f00, CFSR: 1 << 25}.AppendPayload(nil)}.Encode()...)
	post(t, b.addr, fault)
	for deadline := time.Now().Add(20 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.addr+"/devices/dev-crash/faults", nil)
		req.SetBasicAuth("admin", pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(raw), `"function":"write_register"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fault posted to B not symbolicated as seen from C: %s", raw)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Exactly one replica leads; its offline sweep reaches subscribers on every replica.
	first := waitOneLeader(t, ps, pass, 10*time.Second)
	waitEvent(t, events, "device_offline", "dev-a", 10*time.Second)

	// Kill the leader outright: the lock dies with its connection and another replica takes the jobs over.
	ps[first].cmd.Process.Signal(syscall.SIGKILL)
	ps[first].wait(t, 15*time.Second)
	ps[first] = nil
	second := waitOneLeader(t, ps, pass, 15*time.Second)
	if second == first {
		t.Fatal("the killed replica still leads")
	}
	// The new leader runs the jobs: a device that falls silent now is swept, and the event reaches a
	// subscriber on a replica that may or may not be the leader.
	var survivor *proc
	for _, p := range ps {
		if p != nil {
			survivor = p
			break
		}
	}
	events2 := subscribe(t, survivor.addr, pass)
	for _, p := range ps {
		if p != nil && p != survivor {
			post(t, p.addr, session("dev-b", 1))
		}
	}
	waitEvent(t, events2, "device_offline", "dev-b", 15*time.Second)
	if l := leaders(t, ps, pass); len(l) != 1 {
		t.Fatalf("leaders after failover: %v", l)
	}
}
