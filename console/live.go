package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// keepAlive is the silence after which the event stream sends a comment, so proxies keep it open.
const keepAlive = 15 * time.Second

// liveTypes are the events pages show; metric samples are many and only the metric charts' concern.
var liveTypes = []string{lodestone.EventFault, lodestone.EventReboot, lodestone.EventHeartbeat,
	lodestone.EventDeviceOnline, lodestone.EventDeviceOffline, lodestone.EventMetric}

// events streams the bus to a signed-in page as Server-Sent Events (the session cookie authenticates it; no
// polling). Each message is the event as JSON; the browser's EventSource resumes with Last-Event-ID.
func (c *Console) events(w http.ResponseWriter, r *request) error {
	if c.cfg.Events == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "live events are not enabled on this server")
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		json.Unmarshal([]byte(v), &after)
	}
	device := r.URL.Query().Get("device")
	release, err := c.streams.open(r.sess.Hash)
	if err != nil {
		return err
	}
	defer release()
	ctx := r.ctx()
	ch, err := c.cfg.Events.Subscribe(ctx, after)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil || rc.Flush() != nil {
		return nil
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := w.Write([]byte(":\n\n")); err != nil || rc.Flush() != nil {
				return nil
			}
		case e, ok := <-ch:
			if !ok {
				return nil // dropped for falling behind: the browser reconnects and resumes
			}
			if !slices.Contains(liveTypes, e.Type) || device != "" && e.DeviceID != device {
				continue
			}
			raw, _ := json.Marshal(e)
			msg := make([]byte, 0, len(raw)+40)
			msg = append(msg, "id: "...)
			msg = append(msg, []byte(jsonInt(e.ID))...)
			msg = append(msg, "\ndata: "...)
			msg = append(msg, raw...)
			msg = append(msg, "\n\n"...)
			if _, err := w.Write(msg); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Limits on open live streams: each holds a connection and a bus subscription.
const (
	maxStreams           = 1024 // on this server
	maxStreamsPerSession = 8    // a user with many tabs open
)

// streamCount counts the console's open event streams, overall and per session.
type streamCount struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

func (s *streamCount) open(session string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= maxStreams || s.per[session] >= maxStreamsPerSession {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "too many live streams are open; close some tabs")
	}
	if s.per == nil {
		s.per = map[string]int{}
	}
	s.total++
	s.per[session]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		if s.per[session]--; s.per[session] == 0 {
			delete(s.per, session)
		}
	}, nil
}

// ranges are the metric ranges a chart offers.
var ranges = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour},
	{"30d", 30 * 24 * time.Hour}}

func parseRange(s string) (time.Duration, error) {
	if s == "" {
		return 24 * time.Hour, nil
	}
	for _, r := range ranges {
		if r.Name == s {
			return r.D, nil
		}
	}
	return 0, lodestone.Errorf(lodestone.EINVALID, "range must be one of 1h, 6h, 24h, 7d, 30d")
}

// maxCompare is how many devices one chart overlays (ferrite's Compare).
const maxCompare = 5

// seriesQuery reads a chart's query: key, one to five devices (device=…, repeated or comma-separated) or
// fleet=1, and range.
func seriesQuery(r *http.Request, now time.Time) (lodestone.SeriesQuery, error) {
	q := r.URL.Query()
	sq := lodestone.SeriesQuery{Key: strings.TrimSpace(q.Get("key")), Fleet: q.Get("fleet") == "1"}
	if sq.Key == "" || len(sq.Key) > 128 {
		return sq, lodestone.Errorf(lodestone.EINVALID, "choose a metric key")
	}
	for _, v := range q["device"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" && !slices.Contains(sq.DeviceIDs, id) {
				sq.DeviceIDs = append(sq.DeviceIDs, id)
			}
		}
	}
	if len(sq.DeviceIDs) > maxCompare {
		return sq, lodestone.Errorf(lodestone.EINVALID, "compare at most %d devices", maxCompare)
	}
	if !sq.Fleet && len(sq.DeviceIDs) == 0 {
		return sq, lodestone.Errorf(lodestone.EINVALID, "choose one to %d devices, or the fleet", maxCompare)
	}
	if sq.Fleet {
		sq.DeviceIDs = nil
	}
	d, err := parseRange(q.Get("range"))
	if err != nil {
		return sq, err
	}
	sq.To = now
	sq.From = now.Add(-d)
	sq.Step = d / 200 // about 200 points a chart: enough for its width, whatever the range
	return sq, nil
}

type seriesJSON struct {
	DeviceID string   `json:"device_id,omitempty"`
	Key      string   `json:"key"`
	StepMS   int64    `json:"step_ms"`
	Buckets  [][6]any `json:"buckets"` // [start ms, count, min, max, avg, last]
}

// series answers a chart's data as buckets computed by the store, never raw points.
func (c *Console) series(w http.ResponseWriter, r *request) error {
	if c.cfg.Series == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server cannot chart metrics yet")
	}
	sq, err := seriesQuery(r.Request, c.now())
	if err != nil {
		return err
	}
	ss, err := c.cfg.Series.MetricSeries(r.ctx(), sq)
	if err != nil {
		return err
	}
	out := make([]seriesJSON, 0, len(ss))
	for _, s := range ss {
		j := seriesJSON{DeviceID: s.DeviceID, Key: s.Key, StepMS: s.Step.Milliseconds(), Buckets: [][6]any{}}
		for _, b := range s.Buckets {
			j.Buckets = append(j.Buckets, [6]any{b.Start.UnixMilli(), b.Count, finite(b.Min), finite(b.Max),
				finite(b.Avg), finite(b.Last)})
		}
		out = append(out, j)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	writeJSONBody(w, map[string]any{"from": sq.From.UnixMilli(), "to": sq.To.UnixMilli(), "series": out})
	return nil
}

// finite turns NaN and infinities (which JSON cannot carry) into null.
func finite(f float64) any {
	if f != f || f > 1e308 || f < -1e308 {
		return nil
	}
	return f
}

type metricsView struct {
	Key     string
	Devices string
	Fleet   bool
	Range   string
	Ranges  []string
	Keys    []string
	Ready   bool // a chart can be drawn: key and devices or fleet chosen
	Err     string
}

// metrics is the chart page: one device, two to five overlaid, or the fleet's min/avg/max, over a range.
func (c *Console) metrics(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	v := metricsView{Key: q.Get("key"), Devices: strings.Join(q["device"], ","), Fleet: q.Get("fleet") == "1",
		Range: q.Get("range")}
	if v.Range == "" {
		v.Range = "24h"
	}
	for _, x := range ranges {
		v.Ranges = append(v.Ranges, x.Name)
	}
	if v.Key != "" || v.Devices != "" || v.Fleet {
		if _, err := seriesQuery(r.Request, c.now()); err != nil {
			v.Err = lodestone.ErrorMessage(err)
		} else {
			v.Ready = true
		}
	}
	// Keys recently reported anywhere, for the key field's suggestions.
	ms, err := c.cfg.Telemetry.FindMetrics(r.ctx(), lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{
		Limit: 500}})
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !slices.Contains(v.Keys, m.Key) {
			v.Keys = append(v.Keys, m.Key)
		}
	}
	slices.Sort(v.Keys)
	c.page(w, r, "metrics", "Metrics", v, chart)
	return nil
}
