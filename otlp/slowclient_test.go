package otlp_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/netguard"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// TestStalledLogsBodyIsAnswered is issue 13's reproduction: POST /v1/logs with Content-Length: 1000 and no body
// was never answered. With the main API's read timeout it is answered 408 (or closed) once the timeout passes.
func TestStalledLogsBodyIsAnswered(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlp.Config) {
		c.Timeouts = netguard.Timeouts{Read: 500 * time.Millisecond}
	})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token\r\n"+
		"Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a stalled /v1/logs body was not answered in 10 s")
	}
	if line != "" && !strings.Contains(line, " 408 ") {
		t.Fatalf("stalled body answered %q", line)
	}
}

// TestSlowHeadersCutOff: a client trickling header lines is closed once the header timeout passes.
func TestSlowHeadersCutOff(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlp.Config) {
		c.Timeouts = netguard.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond}
	})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan struct{})
	go func() { io.Copy(io.Discard, c); close(closed) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatal("a trickling client was kept for 10 s")
		case <-tick.C:
			io.WriteString(c, "X-Slow: 1\r\n")
		}
	}
}

// TestIdleGRPCConnectionClosed: an h2c (gRPC) connection that sends its preface and then nothing is closed after
// the idle timeout instead of holding a descriptor for ever.
func TestIdleGRPCConnectionClosed(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlp.Config) { c.Timeouts = netguard.Timeouts{Idle: 300 * time.Millisecond} })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}) // an empty SETTINGS frame
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c) // the server's SETTINGS and ack, then GOAWAY and close
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("an idle HTTP/2 connection stayed open for 10 s")
	}
}
