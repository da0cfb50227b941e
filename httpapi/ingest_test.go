package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

func TestIngestBatchVector(t *testing.T) {
	e := newEnv(t, opts{})
	status, _, raw := e.post(nil, v("V1", "V4", "V5", "V2"))
	if status != 200 || raw != `{"ok":true,"chunks_received":4}`+"\n" {
		t.Fatalf("status %d body %q", status, raw)
	}
	var d deviceResp
	if e.get("/devices/test-device", &d) != 200 {
		t.Fatal("device not found")
	}
	if d.Device["firmware_version"] != "1.0.0" || d.Device["build_id"] != float64(3735928559) ||
		d.Device["status"] != "online" || d.Device["device_id"] != "test-device" {
		t.Fatalf("device %v", d.Device)
	}
	var l listResp
	e.get("/devices/test-device/metrics", &l)
	want := map[string]string{"clicks": `{"counter":42}`, "temp": `{"gauge":25.5}`,
		"lat": `{"histogram":{"min":1.5,"max":8.25}}`}
	if len(l.Metrics) != 3 {
		t.Fatalf("metrics %v", l.Metrics)
	}
	for _, m := range l.Metrics {
		if want[m["key"].(string)] != m["value_json"] {
			t.Fatalf("metric %v value_json %q", m["key"], m["value_json"])
		}
	}
	e.get("/devices/test-device/reboots", &l)
	if len(l.Reboots) != 1 || l.Reboots[0]["reason"] != float64(4) || l.Reboots[0]["boot_sequence"] != float64(42) ||
		l.Reboots[0]["uptime_before_reboot"] != float64(100000) {
		t.Fatalf("reboots %v", l.Reboots)
	}
	e.get("/devices/test-device/heartbeats", &l)
	if len(l.Heartbeats) != 1 || l.Heartbeats[0]["uptime_ticks"] != float64(12345) ||
		l.Heartbeats[0]["device_key"] != float64(0xA300F1B2) || l.Heartbeats[0]["free_stack_bytes"] != float64(1024) {
		t.Fatalf("heartbeats %v", l.Heartbeats)
	}

}

func TestIngestFaultKeepsEveryRegister(t *testing.T) {
	e := newEnv(t, opts{})
	if status, _, raw := e.post(nil, v("V1", "V7")); status != 200 {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/faults", &l)
	if len(l.Faults) != 1 {
		t.Fatalf("faults %v", l.Faults)
	}
	f := l.Faults[0]
	if f["pc"] != float64(0x08002000) || f["lr"] != float64(0x08001000) || f["sp"] != float64(0x20003F00) ||
		f["cfsr"] != float64(0x400) || f["hfsr"] != float64(0x40000000) || f["fault_type"] != float64(0) ||
		f["device_id"] != "test-device" || f["symbol"] != nil {
		t.Fatalf("fault %v", f)
	}
	stack := "[" + strings.TrimSuffix(strings.Repeat("3735928559,", 16), ",") + "]"
	if f["stack_snapshot"] != stack {
		t.Fatalf("stack_snapshot %v", f["stack_snapshot"])
	}
	regs := f["registers"].(map[string]any)
	for name, want := range map[string]float64{"r0": 1, "r1": 2, "r2": 3, "r3": 4, "r12": 5, "xpsr": 0x61000000,
		"r4": 10, "r11": 17} {
		if regs[name] != want {
			t.Fatalf("register %s = %v, want %v", name, regs[name], want)
		}
	}
}

func TestIngestTraceAndOtaRequest(t *testing.T) {
	e := newEnv(t, opts{})
	if status, _, raw := e.post(nil, v("V1", "V8", "V6")); status != 200 {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/devices/test-device/traces", &l)
	// "hello" in base64
	if len(l.Traces) != 1 || l.Traces[0]["data_base64"] != "aGVsbG8=" {
		t.Fatalf("traces %v", l.Traces)
	}
	ota, err := e.db.FindOtaRequests(t.Context(), otaFilter())
	if err != nil || len(ota) != 1 || ota[0].BuildID != 0xDEADBEEF || ota[0].MaxChunkSize != 256 {
		t.Fatalf("ota requests %v %v", ota, err)
	}
}

func TestIngestEncrypted(t *testing.T) {
	const key = "42424242424242424242424242424242"
	t.Run("right key", func(t *testing.T) {
		e := newEnv(t, opts{key: key})
		if status, _, raw := e.post(nil, v("V1", "V10")); status != 200 {
			t.Fatalf("status %d %s", status, raw)
		}
		var l listResp
		e.get("/devices/test-device/heartbeats", &l)
		if len(l.Heartbeats) != 1 || l.Heartbeats[0]["uptime_ticks"] != float64(12345) {
			t.Fatalf("decrypted heartbeat %v", l.Heartbeats)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		e := newEnv(t, opts{key: "00112233445566778899aabbccddeeff"})
		status, r, _ := e.post(nil, v("V1", "V10"))
		if status != 207 || r.OK || len(r.Errors) != 1 || r.Errors[0] != "failed to decrypt chunk seq=1 type=Heartbeat" {
			t.Fatalf("status %d %+v", status, r)
		}
		// Never processed as plaintext: no heartbeat stored, but the DeviceInfo is.
		var l listResp
		e.get("/devices/test-device/heartbeats", &l)
		if len(l.Heartbeats) != 0 {
			t.Fatalf("ciphertext stored as a heartbeat: %v", l.Heartbeats)
		}
		if e.get("/devices/test-device", nil) != 200 {
			t.Fatal("valid DeviceInfo beside a bad chunk was not kept")
		}
	})
	t.Run("no key configured", func(t *testing.T) {
		// A configuration gap: 503 so gateways keep the data and retry, and nothing stored from the request.
		e := newEnv(t, opts{})
		status, r, _ := e.post(nil, v("V1", "V10"))
		if status != 503 || r.OK || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "CHUNK_ENCRYPTION_KEY") {
			t.Fatalf("status %d %+v", status, r)
		}
		if e.get("/devices/test-device", nil) != 404 {
			t.Fatal("part of a refused request was stored")
		}
	})
}

func TestIngestCompressed(t *testing.T) {
	e := newEnv(t, opts{})
	if status, _, raw := e.post(nil, v("V1", "V11")); status != 200 {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/devices/test-device/heartbeats", &l)
	if len(l.Heartbeats) != 1 || l.Heartbeats[0]["uptime_ticks"] != float64(12345) ||
		l.Heartbeats[0]["device_key"] != float64(0xA300F1B2) {
		t.Fatalf("decompressed heartbeat %v", l.Heartbeats)
	}
}

func TestIngestTwoDevicesInOneBody(t *testing.T) {
	e := newEnv(t, opts{})
	other := deviceInfo(t, "gw-child-2", "3.1.0", 77)
	body := append(v("V1", "V2"), other...)
	body = append(body, v("V5")...)
	if status, r, raw := e.post(nil, body); status != 200 || r.ChunksReceived != 4 {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/devices/test-device/heartbeats", &l)
	if len(l.Heartbeats) != 1 {
		t.Fatalf("test-device heartbeats %v", l.Heartbeats)
	}
	e.get("/devices/test-device/metrics", &l)
	if len(l.Metrics) != 0 {
		t.Fatalf("metrics attributed to the wrong device: %v", l.Metrics)
	}
	e.get("/devices/gw-child-2/metrics", &l)
	if len(l.Metrics) != 3 {
		t.Fatalf("gw-child-2 metrics %v", l.Metrics)
	}
	var d deviceResp
	e.get("/devices/gw-child-2", &d)
	if d.Device["firmware_version"] != "3.1.0" || d.Device["build_id"] != float64(77) {
		t.Fatalf("second device %v", d.Device)
	}
}

func TestIngestGarbageBetweenChunks(t *testing.T) {
	e := newEnv(t, opts{})
	body := append([]byte("\x00junk"), v("V1")...)
	body = append(body, []byte{0xEC, 0x01, 0x99, 0xFF, 0xEC}...)
	body = append(body, v("V4")...)
	body = append(body, 0x42)
	status, r, raw := e.post(nil, body)
	if status != 207 || r.OK || r.ChunksReceived != 2 || len(r.Errors) != 3 {
		t.Fatalf("status %d %s", status, raw)
	}
	for _, msg := range r.Errors {
		if !strings.Contains(msg, "bytes") {
			t.Fatalf("error does not locate the bad bytes: %q", msg)
		}
	}
	var l listResp
	e.get("/devices/test-device/reboots", &l)
	if len(l.Reboots) != 1 {
		t.Fatalf("reboot after garbage lost: %v", l.Reboots)
	}
}

func TestIngestCorruptChunkKeepsOthers(t *testing.T) {
	e := newEnv(t, opts{})
	bad := v("V4")
	bad[10] ^= 0xFF // breaks the CRC
	body := append(v("V1"), bad...)
	body = append(body, v("V2")...)
	status, r, raw := e.post(nil, body)
	if status != 207 || r.ChunksReceived != 2 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "crc") {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/devices/test-device/heartbeats", &l)
	if len(l.Heartbeats) != 1 {
		t.Fatal("chunk after a corrupt one was not stored")
	}
}

func TestIngestBadBodies(t *testing.T) {
	e := newEnv(t, opts{maxBody: 1024})
	cases := []struct {
		name   string
		body   []byte
		hdr    []string
		status int
		msg    string
	}{
		{"empty", nil, nil, 400, "empty body"},
		{"only garbage", []byte("hello world, not chunks"), nil, 400, "undecodable"},
		{"oversize", bytes.Repeat(v("V1"), 100), nil, 413, "limit"},
		{"no device", v("V2"), nil, 400, "DeviceInfo"},
		{"short heartbeat only", append(v("V1")[:0:0], v("V9")...), []string{"X-Device-Id", "d"}, 400, "heartbeat"},
		{"bad device header", v("V2"), []string{"X-Device-Id", "has space"}, 400, "X-Device-Id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, r, raw := e.post(nil, c.body, c.hdr...)
			if status != c.status || r.OK || len(r.Errors) == 0 || !strings.Contains(strings.ToLower(raw), strings.ToLower(c.msg)) {
				t.Fatalf("status %d body %s", status, raw)
			}
		})
	}
	// A chunked upload without Content-Length is cut off at the limit too.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ingest/chunks", struct{ *bytes.Reader }{bytes.NewReader(bytes.Repeat(v("V1"), 100))})
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked oversize: %d", resp.StatusCode)
	}
	var l listResp
	if e.get("/devices", &l); len(l.Devices) != 0 {
		t.Fatalf("rejected bodies stored devices: %v", l.Devices)
	}
}

func TestIngestHeaderDevice(t *testing.T) {
	e := newEnv(t, opts{})
	if status, _, raw := e.post(nil, v("V2"), "X-Device-Id", "dev-x"); status != 200 {
		t.Fatalf("status %d %s", status, raw)
	}
	var d deviceResp
	if e.get("/devices/dev-x", &d) != 200 || d.Device["status"] != "online" || d.Device["firmware_version"] != "" {
		t.Fatalf("dev-x %v", d.Device)
	}
}

// The SDK's HTTP transport posts one chunk per request, DeviceInfo first, without X-Device-Id.
func TestIngestPerChunkSameConnection(t *testing.T) {
	e := newEnv(t, opts{}) // address window off: only the connection can attribute
	client := e.srv.Client()
	for _, name := range []string{"V1", "V4", "V5", "V2"} {
		if status, _, raw := e.post(client, v(name)); status != 200 {
			t.Fatalf("%s: status %d %s", name, status, raw)
		}
	}
	var l listResp
	e.get("/devices/test-device/metrics", &l)
	if len(l.Metrics) != 3 {
		t.Fatalf("metrics on the same connection not attributed: %v", l.Metrics)
	}
	// A new connection knows nothing, and says so instead of answering ok with nothing stored.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	status, r, _ := e.post(fresh, v("V2"))
	if status != 400 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "DeviceInfo") {
		t.Fatalf("unattributable chunk: %d %+v", status, r)
	}
}

func TestIngestPerChunkNewConnections(t *testing.T) {
	e := newEnv(t, opts{window: time.Minute})
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, name := range []string{"V1", "V4", "V2"} {
		if status, _, raw := e.post(fresh, v(name)); status != 200 {
			t.Fatalf("%s: status %d %s", name, status, raw)
		}
	}
	var l listResp
	e.get("/devices/test-device/reboots", &l)
	if len(l.Reboots) != 1 {
		t.Fatalf("reboot from the same address not attributed: %v", l.Reboots)
	}
}

func TestIngestAPIKey(t *testing.T) {
	e := newEnv(t, opts{apiKey: "s3cret"})
	for _, c := range []struct {
		hdr    []string
		status int
	}{{nil, 401}, {[]string{"X-API-Key", "wrong"}, 401}, {[]string{"X-API-Key", "s3cret"}, 200}} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ingest/chunks", bytes.NewReader(v("V1")))
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("headers %v: %d, want %d", c.hdr, resp.StatusCode, c.status)
		}
		if c.status == 401 && resp.Header.Get("WWW-Authenticate") != "ApiKey" {
			t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// A DeviceInfo that cannot be read must not let the chunks after it fall to the device before it.
func TestIngestMalformedDeviceInfoDoesNotMisattribute(t *testing.T) {
	e := newEnv(t, opts{})
	bad := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: []byte{40, 'x'}}.Encode()
	body := append(v("V1", "V2"), bad...)
	body = append(body, v("V4")...)
	status, r, raw := e.post(nil, body)
	if status != 207 || len(r.Errors) != 2 || !strings.Contains(raw, "DeviceInfo") || !strings.Contains(raw, "no device") {
		t.Fatalf("status %d %s", status, raw)
	}
	var l listResp
	e.get("/devices/test-device/reboots", &l)
	if len(l.Reboots) != 0 {
		t.Fatalf("reboot of an unnamed device given to test-device: %v", l.Reboots)
	}
	e.get("/devices/test-device/heartbeats", &l)
	if len(l.Heartbeats) != 1 {
		t.Fatal("the valid chunks before the bad DeviceInfo were not kept")
	}
}

// held blocks every write until release is closed.
type held struct {
	lodestone.TelemetryWriter
	entered chan struct{}
	release chan struct{}
}

func (h *held) WriteTelemetry(ctx context.Context, b []*lodestone.DeviceBatch) error {
	h.entered <- struct{}{}
	<-h.release
	return h.TelemetryWriter.WriteTelemetry(ctx, b)
}

// When the write queue is full the answer is 503 with Retry-After, which gateways retry; requests already queued
// are still stored.
func TestIngestOverloadAnswers503(t *testing.T) {
	h := &held{entered: make(chan struct{}, 10), release: make(chan struct{})}
	e := newEnv(t, opts{queue: 1, wrap: func(w lodestone.TelemetryWriter) lodestone.TelemetryWriter {
		h.TelemetryWriter = w
		return h
	}})
	first := make(chan int, 1)
	go func() { // not e.post, which may t.Fatal: only the test's goroutine may
		resp, err := http.Post(e.srv.URL+"/ingest/chunks", "application/octet-stream", bytes.NewReader(v("V1")))
		if err != nil {
			t.Error(err)
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	receive(t, h.entered, 10*time.Second, "the first request in the writer") // held there
	// The first probe lands in the queue and times out on the client; the next finds the queue full.
	probe := &http.Client{Timeout: 300 * time.Millisecond}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := probe.Post(e.srv.URL+"/ingest/chunks", "", bytes.NewReader(v("V1", "V4")))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 503 {
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never overloaded")
		}
	}
	close(h.release)
	if s := receive(t, first, 10*time.Second, "the held request's answer"); s != 200 {
		t.Fatalf("held request answered %d", s)
	}
	var l listResp
	for time.Now().Before(deadline) {
		if e.get("/devices/test-device/reboots", &l); len(l.Reboots) == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("queued request lost: %v", l.Reboots)
}
