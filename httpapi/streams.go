package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// StreamLimits bounds Server-Sent Events streams, GET /events/stream and GET /logs/stream together: how many may
// be open on this server and per credential (a user, an API token, or the client address on a public events
// stream), and how long one write to a stream may take before a client that stopped reading is cut off.
type StreamLimits struct {
	Total         int           // per server; 0: DefaultMaxStreams; negative: no limit
	PerCredential int           // per credential; 0: DefaultMaxStreamsPerCredential; negative: no limit
	WriteTimeout  time.Duration // each write; 0: DefaultStreamWriteTimeout
}

// Defaults for StreamLimits: a stream costs a connection, two goroutines and a bus subscription; a dashboard opens
// one or two per tab.
const (
	DefaultMaxStreams              = 1024
	DefaultMaxStreamsPerCredential = 16
	DefaultStreamWriteTimeout      = 30 * time.Second
)

// streamRetryAfter is the Retry-After of a refused stream, in seconds.
const streamRetryAfter = 5

// codeTooManyStreams is the error code of a stream refused for a cap.
const codeTooManyStreams = "too_many_streams"

func (l StreamLimits) withDefaults() StreamLimits {
	if l.Total == 0 {
		l.Total = DefaultMaxStreams
	}
	if l.PerCredential == 0 {
		l.PerCredential = DefaultMaxStreamsPerCredential
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultStreamWriteTimeout
	}
	return l
}

// streamCount counts open streams, in total and per credential.
type streamCount struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

// OpenStreams returns how many event and log streams are open.
func (s *Server) OpenStreams() int {
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	return s.streams.total
}

// streamCredential names whom a stream counts against: the authenticated user or token, else (a public events
// stream) the client's address.
func (s *Server) streamCredential(r *http.Request) string {
	if p := PrincipalFrom(r.Context()); p != nil {
		return "principal:" + p.Name
	}
	ip := ClientIP(r.Context())
	if ip == "" {
		ip = s.clientIP(r)
	}
	return "address:" + ip
}

// openStream admits a stream under the caps, or answers 503 (this server is full) or 429 (this credential has
// its share open), both with Retry-After. The caller must call release when the stream ends.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	lim := s.cfg.Streams.withDefaults()
	key := s.streamCredential(r)
	c := &s.streams
	c.mu.Lock()
	switch {
	case lim.Total > 0 && c.total >= lim.Total:
		c.mu.Unlock()
		refuseStream(w, http.StatusServiceUnavailable, "this server has its limit of "+strconv.Itoa(lim.Total)+
			" event and log streams open; retry later")
		return nil, false
	case lim.PerCredential > 0 && c.per[key] >= lim.PerCredential:
		c.mu.Unlock()
		refuseStream(w, http.StatusTooManyRequests, "this credential has its limit of "+
			strconv.Itoa(lim.PerCredential)+" event and log streams open; close one or retry later")
		return nil, false
	}
	if c.per == nil {
		c.per = map[string]int{}
	}
	c.total++
	c.per[key]++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.total--
			if c.per[key]--; c.per[key] <= 0 {
				delete(c.per, key)
			}
		})
	}, true
}

func refuseStream(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
	writeJSON(w, status, errorBody{Error: msg, Code: codeTooManyStreams})
}

// sseWriter writes to an event stream, each write under its own deadline, so a client that stops reading
// ends the handler within the write timeout instead of pinning it.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *Server) newSSEWriter(w http.ResponseWriter) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.Streams.withDefaults().WriteTimeout}
}

// start sends the stream's headers and first bytes; false when the client cannot be written to.
func (sw *sseWriter) start(first []byte) bool {
	h := sw.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through unbuffered
	sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	sw.w.WriteHeader(http.StatusOK)
	return sw.send(first)
}

// send writes b and flushes it; false on any error, after which the stream must end.
func (sw *sseWriter) send(b []byte) bool {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)); err != nil {
		return false // without a deadline a stalled client would hold the handler for ever
	}
	if len(b) > 0 {
		if _, err := sw.w.Write(b); err != nil {
			return false
		}
	}
	return sw.rc.Flush() == nil
}

// dropped tells the client that the server closed its stream because it fell behind (or the bus restarted), and
// where to resume: EventSource reconnects by itself and sends the last id it saw as Last-Event-ID.
func (sw *sseWriter) dropped(lastID int64) {
	msg := `event: dropped` + "\n" + `data: {"error":"this stream fell behind and was closed; reconnect with ` +
		`Last-Event-ID to resume","code":"stream_lagged","last_event_id":` + strconv.FormatInt(lastID, 10) + "}\n\n"
	sw.send([]byte(msg))
}
