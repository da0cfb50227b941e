package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/event"
)

// sse is a client reading an event stream over a real HTTP connection.
type sse struct {
	t    testing.TB
	resp *http.Response
	r    *bufio.Reader
	stop context.CancelFunc
}

type sseEvent struct {
	id         int64
	name, data string
	comment    bool
}

// stream opens GET /events/stream as the admin; hdr are header name, value pairs.
func (e *env) stream(query string, hdr ...string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/events/stream"+query, nil)
	req.SetBasicAuth("admin", adminPass)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	s := &sse{t: e.t, resp: resp, r: bufio.NewReader(resp.Body), stop: cancel}
	e.t.Cleanup(s.close)
	return s
}

func (s *sse) close() {
	s.stop()
	s.resp.Body.Close()
}

// next reads one event or comment. A stream that ends or stays silent for long fails the test.
func (s *sse) next() sseEvent {
	s.t.Helper()
	var ev sseEvent
	got := make(chan error, 1)
	go func() {
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				got <- err
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.comment || ev.name != "" {
					got <- nil
					return
				}
			case strings.HasPrefix(line, ":"):
				ev.comment = true
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			s.t.Fatalf("stream ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10 s")
	}
	return ev
}

// events reads n events, skipping keep-alive comments.
func (s *sse) events(n int) []sseEvent {
	s.t.Helper()
	var out []sseEvent
	for len(out) < n {
		if ev := s.next(); !ev.comment {
			out = append(out, ev)
		}
	}
	return out
}

// v13Events are the events ferrite sends for the V13 body, in its order (spec §9).
var v13Events = []struct{ name, data string }{
	{"reboot", `{"device_id":"test-device","reason":4}`},
	{"metric", `{"device_id":"test-device","key":"clicks","value":"{\"counter\":42}"}`},
	{"metric", `{"device_id":"test-device","key":"temp","value":"{\"gauge\":25.5}"}`},
	{"metric", `{"device_id":"test-device","key":"lat","value":"{\"histogram\":{\"min\":1.5,\"max\":8.25}}"}`},
	{"heartbeat", `{"device_id":"test-device","uptime_ticks":12345}`},
}

func checkV13(t *testing.T, got []sseEvent) {
	t.Helper()
	for i, w := range v13Events {
		if got[i].name != w.name || got[i].data != w.data {
			t.Fatalf("event %d = %s %s, want %s %s", i, got[i].name, got[i].data, w.name, w.data)
		}
		if i > 0 && got[i].id <= got[i-1].id {
			t.Fatalf("ids not increasing: %d after %d", got[i].id, got[i-1].id)
		}
	}
}

func TestEventStreamSendsFerritesEvents(t *testing.T) {
	e := newEnv(t, opts{})
	s := e.stream("")
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" ||
		s.resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("headers %v", s.resp.Header)
	}
	if code, _, _ := e.post(nil, v("V1", "V4", "V5", "V2")); code != 200 {
		t.Fatalf("ingest %d", code)
	}
	checkV13(t, s.events(5))
	// The fault shape, on its own device.
	e.post(nil, v("V7"), "X-Device-Id", "crashy")
	if ev := s.events(1)[0]; ev.name != "fault" || ev.data != `{"device_id":"crashy","fault_type":0,"pc":"0x08002000"}` {
		t.Fatalf("fault event %s %s", ev.name, ev.data)
	}
}

func TestEventStreamResumesFromLastEventID(t *testing.T) {
	e := newEnv(t, opts{})
	s := e.stream("")
	e.post(nil, v("V1", "V4", "V5", "V2"))
	first := s.events(5)
	s.close()
	e.post(nil, v("V1", "V4", "V5", "V2"))

	// Everything after the last event seen, then live ones: nothing lost, nothing twice.
	r := e.stream("", "Last-Event-ID", strconv.FormatInt(first[4].id, 10))
	second := r.events(5)
	checkV13(t, second)
	if second[0].id <= first[4].id {
		t.Fatalf("resumed at %d, not after %d", second[0].id, first[4].id)
	}
	// The query parameter works too (EventSource cannot set headers on its first request).
	q := e.stream("?last_event_id=" + strconv.FormatInt(first[1].id, 10))
	got := q.events(8)
	if got[0].id != first[2].id || got[7].id != second[4].id {
		t.Fatalf("resume from %d: ids %d..%d", first[1].id, got[0].id, got[7].id)
	}
}

func TestEventStreamDeviceFilter(t *testing.T) {
	e := newEnv(t, opts{})
	s := e.stream("?device_id=other")
	e.post(nil, v("V1", "V4", "V5", "V2"))
	e.post(nil, v("V2"), "X-Device-Id", "other")
	if ev := s.events(1)[0]; ev.name != "heartbeat" || !strings.Contains(ev.data, `"device_id":"other"`) {
		t.Fatalf("filtered stream sent %s %s", ev.name, ev.data)
	}
}

func TestEventStreamKeepAlive(t *testing.T) {
	e := newEnv(t, opts{keepAlive: 20 * time.Millisecond})
	s := e.stream("")
	if ev := s.next(); !ev.comment {
		t.Fatalf("first thing on an idle stream is %+v, want a keep-alive comment", ev)
	}
	e.post(nil, v("V1", "V4", "V5", "V2"))
	checkV13(t, s.events(5))
}

func TestEventStreamBadRequests(t *testing.T) {
	e := newEnv(t, opts{})
	for _, c := range []struct {
		auth   bool
		hdr    string
		status int
		want   string
	}{
		{false, "", 401, `"code":"unauthorized"`},
		{true, "abc", 400, `"code":"invalid"`},
		{true, "-1", 400, `"code":"invalid"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/events/stream", nil)
		if c.auth {
			req.SetBasicAuth("admin", adminPass)
		}
		req.Header.Set("Last-Event-ID", c.hdr)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.want) {
			t.Fatalf("%+v: %d %s", c, resp.StatusCode, body)
		}
	}
}

// PUBLIC_EVENTS opens the stream to clients without credentials, as ferrite's is.
func TestEventStreamPublicByConfiguration(t *testing.T) {
	e := newEnv(t, opts{public: true})
	resp, err := e.srv.Client().Get(e.srv.URL + "/events/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("public stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestEventStreamEnds(t *testing.T) {
	e := newEnv(t, opts{})
	b := e.bus.(*event.Broker)
	// The client leaves: its subscription goes.
	s := e.stream("")
	waitFor(t, func() bool { return b.Subscribers() == 1 })
	s.close()
	waitFor(t, func() bool { return b.Subscribers() == 0 })

	// The server begins shutting down: open streams end, so graceful shutdown does not wait for them.
	s = e.stream("")
	e.api.SetDraining()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(s.resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after SetDraining")
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
