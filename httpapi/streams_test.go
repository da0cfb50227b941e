package httpapi_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// streamEnv serves the event and log streams on a real store, with users admin, alice and bob.
type streamEnv struct {
	t      *testing.T
	srv    *httptest.Server
	api    *httpapi.Server
	events *event.Broker
	logs   *otlp.Fanout
}

func newStreamEnv(t *testing.T, store lodestone.Store, cfg httpapi.Config) *streamEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, store, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: "alice:alice-pass:viewer,bob:bob-pass:viewer",
		Logger: log, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	e := &streamEnv{t: t, events: event.NewBroker(event.BrokerConfig{RingSize: 16}), logs: otlp.NewFanout()}
	logStore, _ := store.(lodestone.LogStore)
	e.api = httpapi.New(cfg, httpapi.Deps{Devices: store, Telemetry: store, Auth: authn, Logger: log,
		Events: e.events, Logs: logStore, LogEvents: e.logs})
	hs := e.api.HTTPServer("", context.Background())
	e.srv = httptest.NewUnstartedServer(hs.Handler)
	e.srv.Config = hs
	e.srv.Start()
	t.Cleanup(func() {
		e.api.SetDraining()
		e.srv.Close()
		authn.Close()
		cancel()
		store.Close()
	})
	return e
}

// rawStream opens path with a raw connection whose receive buffer is small, reads the response head and returns
// the connection and the response body; the caller decides whether to read on.
func (e *streamEnv) rawStream(path, user, pass string) (net.Conn, io.Reader) {
	e.t.Helper()
	// The receive buffer is small from the SYN on, so the server's writes block soon once we stop reading. Shrinking
	// it after the handshake instead makes the kernel drop data it had already let the server send; the server then
	// retransmits with exponential backoff, and a later read waited up to two minutes for it (a CI failure).
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n\r\n", path, auth)
	rd := bufio.NewReaderSize(c, 4<<10)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		e.t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	c.SetReadDeadline(time.Time{})
	return c, resp.Body
}

// hugeLogEvent is one log batch far larger than the socket buffers between server and client.
func hugeLogEvent(size int) lodestone.Event {
	rec := (&lodestone.LogRecord{Project: "p", DeviceID: "d1", Severity: 17,
		Body: `"` + strings.Repeat("x", size) + `"`, Attributes: `{}`}).JSON()
	data, _ := json.Marshal([]lodestone.LogRecordJSON{rec})
	return lodestone.Event{Type: lodestone.EventLogs, DeviceID: "d1", Data: data}
}

// TestStalledStreamClientEnds is issue 21's reproduction for log tails: a client that stops reading pinned the
// tail's handler for ever (no write deadline, Flush errors ignored). Each write now has a deadline, on the log
// tail as on the event stream, and the handler ends within it. The client keeps its connection open throughout.
func TestStalledStreamClientEnds(t *testing.T) {
	for _, b := range backends {
		for _, path := range []string{"/logs/stream", "/events/stream"} {
			t.Run(b.name+path, func(t *testing.T) {
				e := newStreamEnv(t, b.open(t), httpapi.Config{Streams: httpapi.StreamLimits{
					WriteTimeout: 300 * time.Millisecond}})
				e.rawStream(path, "admin", adminPass)
				waitUntil(t, 10*time.Second, "stream open", func() bool { return e.api.OpenStreams() == 1 })
				ev := hugeLogEvent(16 << 20) // the client reads none of it
				if path == "/events/stream" {
					ev.Type = lodestone.EventHeartbeat
					e.events.Publish(context.Background(), ev)
				} else {
					e.logs.Publish(context.Background(), ev)
				}
				start := time.Now()
				waitUntil(t, 10*time.Second, "stalled stream's handler ending", func() bool { return e.api.OpenStreams() == 0 })
				t.Logf("handler ended %v after the event", time.Since(start).Round(time.Millisecond))
			})
		}
	}
}

// TestStreamDroppedSignal: a stream whose subscription the bus drops for falling behind is told so with a
// "dropped" event naming the last id it was sent, then ends; what it pins meanwhile stays bounded.
func TestStreamDroppedSignal(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			// The handler writes the huge event in one write. The write timeout is TestStalledStreamClientEnds'
			// subject, not this one's, so it is generous here: a loaded CI machine must not end the stream early.
			e := newStreamEnv(t, b.open(t), httpapi.Config{Streams: httpapi.StreamLimits{WriteTimeout: 3 * time.Minute}})
			_, rd := e.rawStream("/events/stream", "admin", adminPass)
			waitUntil(t, 10*time.Second, "subscribed", func() bool { return e.events.Subscribers() == 1 })
			big := hugeLogEvent(16 << 20)
			big.Type = lodestone.EventHeartbeat
			e.events.Publish(context.Background(), big) // the handler blocks writing this
			for i := 0; e.events.Subscribers() > 0; i++ {
				if i > 10*event.DefaultBuffer {
					t.Fatal("the bus never dropped a stream that stopped reading")
				}
				e.events.Publish(context.Background(), lodestone.Event{Type: lodestone.EventHeartbeat,
					DeviceID: "d", Data: json.RawMessage(fmt.Sprintf(`{"device_id":"d","uptime_ticks":%d}`, i))})
			}
			done := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(rd) // everything written, up to the end of the stream
				done <- string(b)
			}()
			var got string
			select {
			case got = <-done:
			case <-time.After(2 * time.Minute): // a bound for a loaded CI machine, not a speed check
				t.Fatal("the dropped stream did not end")
			}
			i := strings.LastIndex(got, "event: dropped\n")
			if i < 0 {
				t.Fatalf("no dropped event at the end of the stream (%d bytes)", len(got))
			}
			var d struct {
				Code        string `json:"code"`
				LastEventID int64  `json:"last_event_id"`
			}
			line := strings.SplitN(got[i:], "\n", 3)[1]
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil ||
				d.Code != "stream_lagged" || d.LastEventID == 0 {
				t.Fatalf("dropped event %q: %+v %v", line, d, err)
			}
			if want := fmt.Sprintf("id: %d\n", d.LastEventID); !strings.Contains(got, want) {
				t.Fatalf("last_event_id %d was not sent before the drop", d.LastEventID)
			}
		})
	}
}

// TestStreamCaps: event and log streams together are capped per credential (429) and per server (503), each a
// JSON error with Retry-After; a closed stream frees its place. Public event streams count per address.
func TestStreamCaps(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newStreamEnv(t, b.open(t), httpapi.Config{Streams: httpapi.StreamLimits{Total: 3, PerCredential: 2}})
			open := func(path, user, pass string) (*http.Response, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
				req.SetBasicAuth(user, pass)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cancel(); resp.Body.Close() })
				return resp, cancel
			}
			refused := func(resp *http.Response, status int, msg string) {
				t.Helper()
				var body struct{ Error, Code string }
				json.NewDecoder(resp.Body).Decode(&body)
				if resp.StatusCode != status || body.Code != "too_many_streams" || !strings.Contains(body.Error, msg) ||
					resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("got %d %+v Retry-After %q, want %d too_many_streams %q", resp.StatusCode, body,
						resp.Header.Get("Retry-After"), status, msg)
				}
			}
			a1, closeA1 := open("/events/stream", "admin", adminPass)
			a2, _ := open("/logs/stream", "admin", adminPass)
			if a1.StatusCode != 200 || a2.StatusCode != 200 {
				t.Fatalf("admin's streams: %d %d", a1.StatusCode, a2.StatusCode)
			}
			a3, _ := open("/events/stream", "admin", adminPass)
			refused(a3, http.StatusTooManyRequests, "this credential")
			if r, _ := open("/logs/stream", "alice", "alice-pass"); r.StatusCode != 200 {
				t.Fatalf("alice's stream: %d", r.StatusCode)
			}
			r, _ := open("/events/stream", "bob", "bob-pass")
			refused(r, http.StatusServiceUnavailable, "this server")
			closeA1()
			waitUntil(t, 10*time.Second, "closed stream released", func() bool { return e.api.OpenStreams() == 2 })
			if r, _ := open("/events/stream", "bob", "bob-pass"); r.StatusCode != 200 {
				t.Fatalf("bob's stream after one closed: %d", r.StatusCode)
			}
			if n := e.api.OpenStreams(); n != 3 {
				t.Fatalf("%d streams open, want 3", n)
			}

			// Public event streams count against the client's address.
			pub := newStreamEnv(t, b.open(t), httpapi.Config{PublicEvents: true,
				Streams: httpapi.StreamLimits{PerCredential: 1}})
			get := func() *http.Response {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", pub.srv.URL+"/events/stream", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cancel(); resp.Body.Close() })
				return resp
			}
			if r := get(); r.StatusCode != 200 {
				t.Fatalf("public stream: %d", r.StatusCode)
			}
			refused(get(), http.StatusTooManyRequests, "this credential")
		})
	}
}
