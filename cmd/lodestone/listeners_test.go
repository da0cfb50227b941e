package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// guardedServe runs serve in this process with every listener on: main API, OTLP gRPC and HTTP, FUOTA (TLS).
type guardedServe struct {
	api, grpc, http, fuota string
}

func startGuarded(t *testing.T, args ...string) guardedServe {
	t.Helper()
	dir := t.TempDir()
	g := guardedServe{grpc: freeAddr(t), http: freeAddr(t), fuota: freeAddr(t)}
	env := map[string]string{"BASIC_AUTH_PASS": "pw", "US_AUTH_USERNAME": "fuota", "US_AUTH_PASSWORD": "fuota-pw"}
	var log syncBuffer
	ready := make(chan string, 1)
	c := &serveCmd{stdout: io.Discard, stderr: &log, getenv: func(k string) string { return env[k] }, dir: dir,
		ready: ready}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tokens := writeTokens(t, dir) // here: it may t.Fatal, which the goroutine below must not
	go func() {
		done <- c.Run(ctx, append([]string{"--http", "127.0.0.1:0", "--data-dir", dir,
			"--tokens-config", tokens, "--otlp-grpc", g.grpc, "--otlp-http", g.http,
			"--fuota-addr", g.fuota}, args...))
	}()
	select {
	case g.api = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := receive(t, done, time.Minute, "serve stopped after cancel"); err != nil {
			t.Errorf("serve: %v\n%s", err, log.String())
		}
	})
	return g
}

// rawFrom opens a TCP connection from a chosen loopback address (all of 127/8 is local on Linux).
func rawFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// httpGetFrom sends GET path from a chosen address and returns the status code.
func httpGetFrom(t *testing.T, from, addr, path string) int {
	t.Helper()
	c := rawFrom(t, from, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s on %s from %s: %v", path, addr, from, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// assertRefused: the server closes c, after at most a 503, within a second and without waiting for a request.
func assertRefused(t *testing.T, c net.Conn) {
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

// hold opens n connections from one address that send nothing yet (a slowloris before its first byte). No wait
// follows: each server accepts in one loop, in the order the kernel queued the connections, so a connection
// opened after these is counted after them.
func hold(t *testing.T, from, addr string, n int) {
	t.Helper()
	for range n {
		rawFrom(t, from, addr)
	}
}

// TestListenersSurviveFloods is issue 13 item 4 on the whole process: a client address over its cap on an OTLP
// port cannot open more, while another address, the main API and FUOTA still answer; a full listener leaves the
// others alone; a stalled /v1/logs body is answered once the read timeout passes.
func TestListenersSurviveFloods(t *testing.T) {
	g := startGuarded(t, "--max-conns", "12", "--max-conns-per-addr", "4", "--read-timeout", "1s")

	t.Run("per-address cap on OTLP HTTP", func(t *testing.T) {
		hold(t, "127.0.0.2", g.http, 4)
		assertRefused(t, rawFrom(t, "127.0.0.2", g.http))
		if s := httpGetFrom(t, "127.0.0.3", g.http, "/healthz"); s != http.StatusNoContent {
			t.Fatalf("another address on OTLP HTTP: %d", s)
		}
		if s := httpGetFrom(t, "127.0.0.2", g.api, "/health"); s != http.StatusOK {
			t.Fatalf("the flooding address on the main API: %d", s)
		}
	})
	t.Run("per-address cap on OTLP gRPC", func(t *testing.T) {
		hold(t, "127.0.0.4", g.grpc, 4)
		assertRefused(t, rawFrom(t, "127.0.0.4", g.grpc))
		if s := httpGetFrom(t, "127.0.0.5", g.grpc, "/healthz"); s != http.StatusNoContent {
			t.Fatalf("another address on the gRPC port: %d", s)
		}
	})
	t.Run("a full listener starves no other", func(t *testing.T) {
		for i := range 3 { // 3 addresses × 4 = the listener's 12
			hold(t, fmt.Sprintf("127.0.1.%d", i+1), g.api, 4)
		}
		assertRefused(t, rawFrom(t, "127.0.1.9", g.api))
		if s := httpGetFrom(t, "127.0.1.9", g.http, "/healthz"); s != http.StatusNoContent {
			t.Fatalf("OTLP HTTP while the API is full: %d", s)
		}
		if code := fuotaHandshake(t, "127.0.1.9", g.fuota, "http/1.1"); code == 0 {
			t.Fatal("FUOTA did not answer while the API is full")
		}
	})
	t.Run("stalled logs body answered", func(t *testing.T) {
		c := rawFrom(t, "127.0.0.6", g.http)
		io.WriteString(c, "POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer kill-token\r\n"+
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
	})
}

// fuotaHandshake speaks TLS to the FUOTA listener offering only proto over ALPN, sends an unauthenticated
// HTTP/1.0 request, and returns the status code (0: no answer).
func fuotaHandshake(t *testing.T, from, addr, proto string) int {
	t.Helper()
	raw := rawFrom(t, from, addr)
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake offering %s: %v", proto, err)
	}
	if got := c.ConnectionState().NegotiatedProtocol; got != proto {
		t.Fatalf("negotiated %q, offered %q", got, proto)
	}
	io.WriteString(c, "GET /files HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("answer over %s: %v", proto, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFUOTAAcceptsHTTP10ALPN: a TLS client that offers only ALPN http/1.0 (curl --http1.0) gets a handshake and
// an answer; so do http/1.1 and h2 clients.
func TestFUOTAAcceptsHTTP10ALPN(t *testing.T) {
	g := startGuarded(t)
	for _, p := range []string{"http/1.0", "http/1.1"} {
		if code := fuotaHandshake(t, "127.0.0.1", g.fuota, p); code != http.StatusForbidden {
			t.Fatalf("over %s: %d, want 403 (FUOTA refuses missing credentials so)", p, code)
		}
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed; skipping the curl --http1.0 check")
		return
	}
	out, err := exec.Command("curl", "--http1.0", "-k", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
		"-u", "fuota:fuota-pw", "https://"+g.fuota+"/devices").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "200" {
		t.Fatalf("curl --http1.0 -k: %v %s", err, out)
	}
	t.Logf("curl --http1.0: %s", out)
}

// TestFDExhaustionSparesOtherPorts is issue 13's reproduction at scale: the real binary under a 256-descriptor
// limit, 400 connections that stall their /v1/logs body. Before, they took every descriptor and the main API,
// the gRPC port and FUOTA stopped answering; now the OTLP HTTP port's own budget runs out and the rest answer.
func TestFDExhaustionSparesOtherPorts(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to set the descriptor limit")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	api, grpcAddr, httpAddr, fuota := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "serve", "--http", api,
		"--data-dir", dir, "--tokens-config", writeTokens(t, dir), "--otlp-grpc", grpcAddr, "--otlp-http", httpAddr,
		"--fuota-addr", fuota)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BASIC_AUTH_PASS=pw",
		"US_AUTH_USERNAME=fuota", "US_AUTH_PASSWORD=fuota-pw"}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + api + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lodestone did not start\n%s", stderr.String())
		}
	}
	for i := range 400 {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.Dial("tcp", httpAddr)
		if err != nil {
			continue // the backlog is full: that is the flood's problem, not the other ports'
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "POST /v1/logs HTTP/1.1\r\nHost: x\r\nX-N: %d\r\nContent-Length: 1000\r\n\r\n", i)
	}
	time.Sleep(300 * time.Millisecond)
	if s := httpGetFrom(t, "127.0.0.1", api, "/health"); s != http.StatusOK {
		t.Fatalf("main API during the flood: %d", s)
	}
	if s := httpGetFrom(t, "127.0.0.1", grpcAddr, "/healthz"); s != http.StatusNoContent {
		t.Fatalf("OTLP gRPC port during the flood: %d", s)
	}
	if code := fuotaHandshake(t, "127.0.0.1", fuota, "http/1.1"); code != http.StatusForbidden {
		t.Fatalf("FUOTA during the flood: %d", code)
	}
	if !strings.Contains(stderr.String(), "connections refused") {
		t.Errorf("the refusals were not logged:\n%s", stderr.String())
	}
}

// TestConnectionSettings: the caps default to a share of the descriptor limit and 256, come from the environment
// or flags, and refuse nonsense.
func TestConnectionSettings(t *testing.T) {
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, dir: t.TempDir()}
	cfg, err := c.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns < 16 || cfg.MaxConns > 16384 || cfg.MaxConnsPerAddr != 256 || cfg.Timeouts.Read != time.Minute ||
		cfg.Timeouts.ReadHeader != 10*time.Second || cfg.Timeouts.Idle != 2*time.Minute {
		t.Fatalf("defaults: conns %d per addr %d timeouts %+v", cfg.MaxConns, cfg.MaxConnsPerAddr, cfg.Timeouts)
	}
	env := map[string]string{"LODESTONE_MAX_CONNS": "900", "LODESTONE_MAX_CONNS_PER_ADDR": "0"}
	c.getenv = func(k string) string { return env[k] }
	if cfg, err = c.config([]string{"--max-conns", "1000", "--read-timeout", "5s"}); err != nil ||
		cfg.MaxConns != 1000 || cfg.MaxConnsPerAddr != 0 || cfg.Timeouts.Read != 5*time.Second {
		t.Fatalf("env and flags: %v %d %d %+v", err, cfg.MaxConns, cfg.MaxConnsPerAddr, cfg.Timeouts)
	}
	for _, args := range [][]string{{"--max-conns", "-1"}, {"--max-conns-per-addr", "-5"}, {"--idle-timeout", "0"}} {
		if _, err := c.config(args); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	env["LODESTONE_MAX_CONNS"] = "lots"
	if _, err := c.config(nil); err == nil || !strings.Contains(err.Error(), "LODESTONE_MAX_CONNS") {
		t.Fatalf("bad LODESTONE_MAX_CONNS: %v", err)
	}
}
