package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func (s *Server) routesEvents() {
	// Public in ferrite; here it needs a viewer, since the stream names devices and their faults.
	s.handle("GET /events/stream", s.cfg.EventsAccess(), s.eventStream)
}

// maxEventsPerFlush caps how many waiting events one write takes.
const maxEventsPerFlush = 256

// eventStream serves live events as Server-Sent Events, as ferrite's GET /events/stream does: per event an
// "event: <name>" and a "data: <json>" line with ferrite's names and shapes, flushed at once, and a ":" comment
// after KeepAlive of silence. lodestone adds an "id:" line with the bus id, and resumes after the id in
// Last-Event-ID (which browsers' EventSource sends when it reconnects) or ?last_event_id=; ?device_id= keeps one
// device's events. The stream ends when the client leaves or the server starts shutting down.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Events == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "live events are not enabled on this server")
	}
	after, err := lastEventID(r)
	if err != nil {
		return err
	}
	device := r.URL.Query().Get("device_id")
	ctx := r.Context()
	release, ok := s.openStream(w, r)
	if !ok {
		return nil
	}
	defer release()
	events, err := s.deps.Events.Subscribe(ctx, after)
	if err != nil {
		return err
	}
	s.prom.sseConnections.Inc()

	sw := s.newSSEWriter(w)
	if !sw.start(nil) {
		return nil
	}
	keepAlive := time.NewTimer(s.cfg.KeepAlive)
	defer keepAlive.Stop()
	var buf []byte
	send := func(b []byte) bool {
		keepAlive.Reset(s.cfg.KeepAlive)
		return sw.send(b)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		case <-keepAlive.C:
			if !send([]byte(":\n\n")) {
				return nil
			}
		case e, ok := <-events:
			if !ok {
				// The bus dropped this stream for falling behind (or closed): say so and end it, so that what a
				// slow client holds stays bounded; the client resumes after the last id it saw.
				if ctx.Err() == nil {
					sw.dropped(after)
				}
				return nil
			}
			// Write this event and any already waiting, then flush once: each event goes out at once, and a
			// burst costs one flush rather than one per event.
			buf = buf[:0]
			for n := 1; ; n++ {
				after = e.ID
				if e.Type != lodestone.EventLogBatch && (device == "" || e.DeviceID == device) {
					buf = appendSSE(buf, e)
				}
				more := false
				if n < maxEventsPerFlush {
					select {
					case e, more = <-events: // a closed channel is seen again by the outer loop
					default:
					}
				}
				if !more {
					break
				}
			}
			if len(buf) > 0 && !send(buf) {
				return nil
			}
		}
	}
}

// lastEventID reads the resume point: the Last-Event-ID header, else ?last_event_id=, else 0 (live only).
func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, lodestone.Errorf(lodestone.EINVALID, "Last-Event-ID must be an event id (a non-negative integer)")
	}
	return id, nil
}

// appendSSE writes one event in the text/event-stream format. Data is one line of JSON; should it ever hold a
// newline, each line gets its own "data:" field, which clients join back with newlines.
func appendSSE(b []byte, e lodestone.Event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	data := []byte(e.Data)
	for {
		line, rest, more := bytes.Cut(data, []byte{'\n'})
		b = append(b, "\ndata: "...)
		b = append(b, bytes.TrimSuffix(line, []byte{'\r'})...)
		if !more {
			break
		}
		data = rest
	}
	return append(b, "\n\n"...)
}
