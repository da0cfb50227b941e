package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

func TestIngestRateLimitPerIPAndPerDeviceKey(t *testing.T) {
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{RPS: 0.01, Burst: 3}}})
	for i := range 3 {
		a := e.do("POST", "/ingest/chunks", nil, v("V1")).must(t, 200)
		if a.header.Get("X-RateLimit-Limit") != "3" || a.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d headers %v", i, a.header)
		}
	}
	a := e.do("POST", "/ingest/chunks", nil, v("V1")).must(t, 429)
	if ra, _ := strconv.Atoi(a.header.Get("Retry-After")); ra < 1 || a.header.Get("X-RateLimit-Remaining") != "0" ||
		a.header.Get("X-RateLimit-Reset") == "" || a.body["error"] != "Rate limit exceeded" {
		t.Fatalf("429 answer %v %s", a.header, a.raw)
	}
	// Reads are not ingest: still served.
	e.do("GET", "/devices", basic("admin", adminPass), nil).must(t, 200)
}

func TestDeviceKeyBucketIsPerDevice(t *testing.T) {
	// Each request comes from its own address (through a trusted proxy), so only the device buckets bind.
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{RPS: 0.01, Burst: 2},
		TrustedProxies: mustPrefixes(t, "127.0.0.1")}})
	root := basic("admin", adminPass)
	k1 := e.do("POST", "/devices/d1/keys", root, nil).must(t, 201).body["secret"].(string)
	k2 := e.do("POST", "/devices/d2/keys", root, nil).must(t, 201).body["secret"].(string)
	ip := 0
	post := func(key string) answer {
		ip++
		return e.do("POST", "/ingest/chunks", apiKey(key), v("V4"), "X-Forwarded-For", "192.0.2."+strconv.Itoa(ip))
	}
	post(k1).must(t, 200)
	post(k1).must(t, 200)
	post(k1).must(t, 429)
	post(k2).must(t, 200)
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := httpapi.ParseTrustedProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthFailuresAreRateLimited(t *testing.T) {
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{AuthFailures: 0.001,
		AuthFailureBurst: 3}}})
	for range 3 {
		e.do("GET", "/devices", basic("admin", "guess"), nil).must(t, 401)
	}
	a := e.do("GET", "/devices", basic("admin", "guess"), nil).must(t, 429)
	if a.header.Get("Retry-After") == "" {
		t.Fatalf("no Retry-After: %v", a.header)
	}
	// Once blocked, even the right password waits: the check is not run at all.
	e.do("GET", "/devices", basic("admin", adminPass), nil).must(t, 429)
	// Requests without credentials are not failures.
	f := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{AuthFailures: 0.001,
		AuthFailureBurst: 1}}})
	for range 3 {
		f.do("GET", "/devices", nil, nil).must(t, 401)
	}
	f.do("GET", "/devices", basic("admin", adminPass), nil).must(t, 200)
}

func TestRequestIDs(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	a := e.do("GET", "/health", nil, nil, "X-Request-Id", "trace-abc.123")
	if a.header.Get("X-Request-Id") != "trace-abc.123" {
		t.Fatalf("kept id %q", a.header.Get("X-Request-Id"))
	}
	a = e.do("GET", "/health", nil, nil, "X-Request-Id", "bad id\twith spaces")
	if id := a.header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \t") {
		t.Fatalf("replaced id %q", id)
	}
	b := e.do("GET", "/nowhere", nil, nil)
	if b.header.Get("X-Request-Id") == "" || b.header.Get("X-Request-Id") == a.header.Get("X-Request-Id") {
		t.Fatalf("ids %q %q", a.header.Get("X-Request-Id"), b.header.Get("X-Request-Id"))
	}
}

func TestSecurityHeadersAndCORS(t *testing.T) {
	e := newAuthEnv(t, authOpts{})
	a := e.do("GET", "/devices", nil, nil).must(t, 401)
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Referrer-Policy": "no-referrer", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"} {
		if got := a.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS headers without CORS_ORIGIN")
	}
	c := newAuthEnv(t, authOpts{cfg: httpapi.Config{CORSOrigin: "https://dash.example"}})
	a = c.do("OPTIONS", "/devices", nil, nil, "Origin", "https://dash.example",
		"Access-Control-Request-Method", "GET").must(t, 200)
	if a.header.Get("Access-Control-Allow-Origin") != "https://dash.example" ||
		!strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "authorization") {
		t.Fatalf("preflight %v", a.header)
	}
	a = c.do("GET", "/health", nil, nil, "Origin", "https://dash.example").must(t, 200)
	if !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("expose %v", a.header)
	}
}

func TestTrustedProxies(t *testing.T) {
	if _, err := httpapi.ParseTrustedProxies("10.0.0.0/8, 127.0.0.1, ::1, nonsense"); err == nil {
		t.Fatal("accepted nonsense")
	}
	// Through a trusted loopback proxy the client is the rightmost untrusted X-Forwarded-For hop; each gets its
	// own ingest bucket.
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{RPS: 0.01, Burst: 1},
		TrustedProxies: mustPrefixes(t, "127.0.0.1,10.9.0.0/16")}})
	e.do("POST", "/ingest/chunks", nil, v("V1"), "X-Forwarded-For", "203.0.113.7, 10.9.1.1").must(t, 200)
	e.do("POST", "/ingest/chunks", nil, v("V1"), "X-Forwarded-For", "198.51.100.1").must(t, 200)
	e.do("POST", "/ingest/chunks", nil, v("V1"), "X-Forwarded-For", "203.0.113.7").must(t, 429)
	// Without trust the header is ignored: every request is the peer's.
	u := newAuthEnv(t, authOpts{cfg: httpapi.Config{Limits: httpapi.Limits{RPS: 0.01, Burst: 1}}})
	u.do("POST", "/ingest/chunks", nil, v("V1"), "X-Forwarded-For", "203.0.113.7").must(t, 200)
	u.do("POST", "/ingest/chunks", nil, v("V1"), "X-Forwarded-For", "198.51.100.1").must(t, 429)
}

// TestSlowClientIsCutOff is a slowloris: a raw TCP client that sends a header line at a time, forever. The
// server must close the connection once the header timeout passes, however much the client keeps trickling.
func TestSlowClientIsCutOff(t *testing.T) {
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Timeouts: httpapi.Timeouts{ReadHeader: 300 * time.Millisecond,
		Read: 600 * time.Millisecond}}})
	addr := strings.TrimPrefix(e.srv.URL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server closes the connection
		closed <- err
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatal("the server kept a trickling client's connection open for 10 s")
		case <-tick.C:
			io.WriteString(conn, "X-Slow-"+strconv.Itoa(i)+": 1\r\n") // errors once closed; the reader reports
		}
	}
}

// TestSlowBodyIsCutOff sends headers promptly and then the body a byte at a time.
func TestSlowBodyIsCutOff(t *testing.T) {
	e := newAuthEnv(t, authOpts{cfg: httpapi.Config{Timeouts: httpapi.Timeouts{Read: 500 * time.Millisecond}}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /ingest/chunks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	done := make(chan *http.Response, 1)
	go func() {
		resp, _ := http.ReadResponse(bufio.NewReader(conn), nil)
		done <- resp
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case resp := <-done:
			if resp != nil && resp.StatusCode == 200 {
				t.Fatal("a body that never finished was accepted")
			}
			return
		case <-deadline:
			t.Fatal("the server waited 10 s for a trickling body")
		case <-tick.C:
			conn.Write([]byte{0xEC})
		}
	}
}
