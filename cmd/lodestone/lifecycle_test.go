package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

var goroutineHeader = regexp.MustCompile(`^goroutine (\d+) `)

// goroutines returns the stacks of every goroutine by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if m := goroutineHeader.FindStringSubmatch(g); m != nil {
			out[m[1]] = g
		}
	}
	return out
}

// ours reports whether a goroutine runs the server's code: lodestone's packages, this command's, or a server
// connection. Test goroutines and the test's PostgreSQL proxy are not the server's.
func ours(stack string) bool {
	if strings.Contains(stack, "testing.tRunner") || strings.Contains(stack, "pgtest.(*Proxy)") {
		return false
	}
	return strings.Contains(stack, "lodestone-fleet/lodestone/") || strings.Contains(stack, "\nmain.") ||
		strings.Contains(stack, "net/http.(*conn).serve") || strings.Contains(stack, "net/http.(*Server).Serve")
}

// assertNoLeak fails if a goroutine of the server's code started after before is still there; a goroutine that
// was joined may still be returning for a moment, hence the short wait.
func assertNoLeak(t *testing.T, before map[string]string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(2 * time.Second); ; {
		left = left[:0]
		for id, g := range goroutines() {
			if _, old := before[id]; !old && ours(g) {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d goroutines of the server outlived serve:\n\n%s", len(left), strings.Join(left, "\n\n"))
}

// failingListener is a real listener whose Accept fails, as a listener can in production (the socket is gone),
// once fail is called.
type failingListener struct {
	net.Listener
	failed atomic.Bool
}

var errInjected = errors.New("injected accept failure")

func (l *failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.failed.Load() {
		return nil, errInjected
	}
	return c, err
}

func (l *failingListener) fail() {
	l.failed.Store(true)
	l.Listener.Close()
}

// lifecycleServe runs serve in this process with every listener on (main API, OTLP gRPC and HTTP, FUOTA) and
// returns its result channel once it serves, or at once when it fails to start.
type lifecycleServe struct {
	cmd    *serveCmd
	log    *syncBuffer
	done   chan error
	cancel context.CancelFunc
	api    string
	ln     *failingListener
}

func startLifecycle(t *testing.T, args ...string) *lifecycleServe {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{"BASIC_AUTH_PASS": "pw", "US_AUTH_USERNAME": "fuota", "US_AUTH_PASSWORD": "fuota-pw"}
	s := &lifecycleServe{log: &syncBuffer{}, done: make(chan error, 1)}
	ready := make(chan string, 1)
	s.cmd = &serveCmd{stdout: io.Discard, stderr: s.log, getenv: func(k string) string { return env[k] }, dir: dir,
		ready: ready, listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			s.ln = &failingListener{Listener: ln}
			return s.ln, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		s.done <- s.cmd.Run(ctx, append([]string{"--http", "127.0.0.1:0", "--data-dir", dir,
			"--tokens-config", writeTokens(t, dir), "--otlp-grpc", freeAddr(t), "--otlp-http", freeAddr(t),
			"--shutdown-timeout", "10s"}, args...))
	}()
	select {
	case s.api = <-ready:
	case err := <-s.done:
		s.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\n%s", s.log.String())
	}
	return s
}

// result waits for serve to return.
func (s *lifecycleServe) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not return\n%s", s.log.String())
		return nil
	}
}

// With FUOTA on, both listeners' serve loops end at shutdown; neither is left blocked on reporting its end.
func TestServeFUOTAShutdownLeavesNoGoroutine(t *testing.T) {
	before := goroutines()
	s := startLifecycle(t, "--fuota-addr", freeAddr(t))
	if s.api == "" {
		t.Fatalf("serve did not start: %v\n%s", s.result(t), s.log.String())
	}
	resp, err := http.Get("http://" + s.api + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.cancel()
	if err := s.result(t); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.log.String())
	}
	http.DefaultClient.CloseIdleConnections()
	assertNoLeak(t, before)
}

// A port already taken stops the start with an error naming it, and nothing that setup started is left running
// (the OTLP receiver's listeners were bound first).
func TestServeFUOTAPortTakenLeavesNoGoroutine(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	before := goroutines()
	s := startLifecycle(t, "--fuota-addr", taken.Addr().String())
	if s.api != "" {
		t.Fatal("serve started with the FUOTA port taken")
	}
	err = s.result(t)
	if err == nil || !strings.Contains(err.Error(), "FUOTA") {
		t.Fatalf("serve: %v, want an error naming the FUOTA listener", err)
	}
	assertNoLeak(t, before)
}

// When the main listener fails while serving, serve shuts down in order and returns the error only after every
// goroutine it started has returned: on PostgreSQL that includes the leader election, the replica counter, the
// log relay and the event bus's goroutines.
func TestServeListenerFailureJoinsEverything(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string { return []string{"--db", pgtest.URL(t)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.db(t), "--fuota-addr", freeAddr(t))
			before := goroutines()
			s := startLifecycle(t, args...)
			if s.api == "" {
				t.Fatalf("serve did not start: %v\n%s", s.result(t), s.log.String())
			}
			s.ln.fail()
			err := s.result(t)
			if !errors.Is(err, errInjected) {
				t.Fatalf("serve: %v, want the listener's error\n%s", err, s.log.String())
			}
			if !strings.Contains(s.log.String(), "stopped") {
				t.Fatalf("no ordered shutdown logged:\n%s", s.log.String())
			}
			// serve's own context is still live: whatever is left was never stopped.
			assertNoLeak(t, before)
		})
	}
}

// SIGTERM while PostgreSQL has stopped answering (a network partition: no error, no reply) still ends the process
// within --shutdown-timeout: an ingest request stuck in its commit, the event bus's retries and the store's close
// are each bounded by the one deadline instead of their own 30 s and 60 s timeouts.
func TestSIGTERMWithPostgresUnreachableKeepsDeadline(t *testing.T) {
	px := pgtest.StartProxy(t, pgtest.URL(t))
	bin := buildBinary(t)
	const timeout = 2 * time.Second
	p := startWith(t, bin, t.TempDir(), []string{"--shutdown-timeout", timeout.String()},
		"LODESTONE_DB="+px.URL(), "BASIC_AUTH_PASS=pw")
	// A subscriber makes the bus store events, so it has writes to retry.
	events := subscribe(t, p.addr, "pw")
	post(t, p.addr, session("before-partition", 1))
	waitEvent(t, events, "heartbeat", "before-partition", 10*time.Second)

	px.Stall()
	stuck := make(chan struct{})
	go func() {
		defer close(stuck)
		client := &http.Client{Timeout: 2 * time.Minute}
		if resp, err := client.Post("http://"+p.addr+"/ingest/chunks", "application/octet-stream",
			strings.NewReader(string(session("during-partition", 2)))); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the request reaches its commit, which never returns
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const slack = 3 * time.Second
	select {
	case err := <-p.exited:
		t.Logf("exited %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(timeout + slack):
		t.Fatalf("still running %v after SIGTERM with --shutdown-timeout %v\n%s", timeout+slack, timeout,
			p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "shutdown deadline passed") {
		t.Fatalf("no word of what shutdown gave up on:\n%s", p.stderr.String())
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck request did not end with the process")
	}
}
