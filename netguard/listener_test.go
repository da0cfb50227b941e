package netguard_test

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/netguard"
)

// serve runs an HTTP server on a guarded loopback listener and returns its address.
func serve(t *testing.T, lim netguard.Limits, to netguard.Timeouts) (string, *netguard.Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := netguard.Listen(raw, lim)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		io.WriteString(w, "ok")
	})}
	to.Apply(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return raw.Addr().String(), ln
}

// dialFrom opens a raw TCP connection from a chosen loopback address (all of 127/8 is local on Linux).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends one request on c and returns the status line, or "" if the connection closed without an answer.
func get(c net.Conn) string {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// refusedPromptly: the server closes c (after an optional 503) within a second, without reading a request.
func refusedPromptly(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a connection over the limit was held open")
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
		t.Fatalf("refusal said %q", b)
	}
}

// TestPerAddressCap: one address holding its share of stalled connections cannot open another, while another
// address still gets answers; a slot frees when a connection closes.
func TestPerAddressCap(t *testing.T) {
	addr, ln := serve(t, netguard.Limits{MaxConns: 10, MaxConnsPerAddr: 3, Reject: netguard.HTTP503, Name: "t",
		Logger: quiet},
		netguard.Timeouts{})
	var held []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.2", addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n") // and no body
		held = append(held, c)
	}
	waitOpen(t, ln, 3)
	refusedPromptly(t, dialFrom(t, "127.0.0.2", addr))
	other := dialFrom(t, "127.0.0.3", addr)
	if got := get(other); got != "HTTP/1.1 200 OK" {
		t.Fatalf("another address got %q", got)
	}
	other.Close()
	held[0].Close()
	waitOpen(t, ln, 2)
	if got := get(dialFrom(t, "127.0.0.2", addr)); got != "HTTP/1.1 200 OK" {
		t.Fatalf("after a close the address got %q", got)
	}
}

// TestListenerCap: a full listener refuses every address, and answers again once connections close.
func TestListenerCap(t *testing.T) {
	addr, ln := serve(t, netguard.Limits{MaxConns: 4, MaxConnsPerAddr: 100}, netguard.Timeouts{})
	var held []net.Conn
	for i := range 4 {
		held = append(held, dialFrom(t, "127.0.0."+string(rune('2'+i)), addr))
	}
	waitOpen(t, ln, 4)
	refusedPromptly(t, dialFrom(t, "127.0.0.9", addr))
	for _, c := range held {
		c.Close()
	}
	waitOpen(t, ln, 0)
	if got := get(dialFrom(t, "127.0.0.9", addr)); got != "HTTP/1.1 200 OK" {
		t.Fatalf("got %q", got)
	}
}

// TestExemptAddress: a trusted proxy is not limited per address.
func TestExemptAddress(t *testing.T) {
	addr, ln := serve(t, netguard.Limits{MaxConnsPerAddr: 1, Exempt: mustPrefixes("127.0.0.5/32")},
		netguard.Timeouts{})
	dialFrom(t, "127.0.0.5", addr)
	dialFrom(t, "127.0.0.5", addr)
	waitOpen(t, ln, 2)
	if got := get(dialFrom(t, "127.0.0.5", addr)); got != "HTTP/1.1 200 OK" {
		t.Fatalf("got %q", got)
	}
}

// TestStalledBodyTimesOut is the OTLP reproduction at this layer: a declared body that never comes is answered
// (or the connection closed) once the read timeout passes, and its slot is given back.
func TestStalledBodyTimesOut(t *testing.T) {
	addr, ln := serve(t, netguard.Limits{MaxConns: 10}, netguard.Timeouts{Read: 300 * time.Millisecond})
	c := dialFrom(t, "127.0.0.2", addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	line, err := bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a stalled body was waited for 5 s")
	}
	if line != "" && !strings.Contains(line, "408") {
		t.Fatalf("stalled body answered %q", line)
	}
	t.Logf("answered %q after %v", strings.TrimSpace(line), time.Since(start))
	c.Close()
	waitOpen(t, ln, 0)
}

// TestIdleHTTP2Closed: an h2c client that sends its preface and then nothing is closed after the idle timeout.
func TestIdleHTTP2Closed(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: http.NotFoundHandler(), Protocols: &protos}
	netguard.Timeouts{Idle: 300 * time.Millisecond}.Apply(srv)
	go srv.Serve(netguard.Listen(raw, netguard.Limits{}))
	defer srv.Close()
	c := dialFrom(t, "127.0.0.2", raw.Addr().String())
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}) // empty SETTINGS
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.Copy(io.Discard, c) // the server's SETTINGS, then GOAWAY and close
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("an idle HTTP/2 connection stayed open for 5 s")
	}
}

// fakeListener fails every Accept with EMFILE.
type fakeListener struct {
	net.Listener
	calls  atomic.Int64
	closed chan struct{}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.calls.Add(1)
	select {
	case <-f.closed:
		return nil, net.ErrClosed
	default:
	}
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
}
func (f *fakeListener) Close() error   { close(f.closed); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestOutOfDescriptorsBacksOff: Accept waits, longer each time, while the process is out of descriptors, instead
// of returning (which would stop the server) or retrying in a tight loop; Close ends the wait.
func TestOutOfDescriptorsBacksOff(t *testing.T) {
	f := &fakeListener{closed: make(chan struct{})}
	ln := netguard.Listen(f, netguard.Limits{})
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	time.Sleep(500 * time.Millisecond)
	if n := f.calls.Load(); n > 10 {
		t.Fatalf("%d accept attempts in 500 ms", n)
	}
	select {
	case err := <-done:
		t.Fatalf("Accept returned %v while out of descriptors", err)
	default:
	}
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the wait")
	}
}

func waitOpen(t *testing.T, ln *netguard.Listener, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ln.Open() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", ln.Open(), n)
		}
	}
}

func mustPrefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

var quiet = slog.New(slog.DiscardHandler)
