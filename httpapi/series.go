package httpapi

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// defaultSeriesRange is the range of a series request that names no from.
const defaultSeriesRange = 24 * time.Hour

func (s *Server) routesSeries() {
	s.handle("GET /devices/{id}/series", AccessViewer, s.deviceSeries)
	s.handle("GET /series", AccessViewer, s.series)
}

// deviceSeries answers GET /devices/{id}/series: one device's series, the device named as on GET /devices/{id}.
func (s *Server) deviceSeries(w http.ResponseWriter, r *http.Request) error {
	q, err := seriesQuery(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	if len(q.DeviceIDs) > 0 || q.GroupID != 0 || q.Tag != "" {
		return lodestone.Errorf(lodestone.EINVALID, "device_id, group_id and tag belong to GET /series; "+
			"this route reads the device in its path")
	}
	d, err := s.findDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	q.DeviceIDs = []string{d.DeviceID}
	return s.writeSeries(w, r, q)
}

// series answers GET /series: one series per device_id given, else one series for the fleet, within group_id
// and tag when given.
func (s *Server) series(w http.ResponseWriter, r *http.Request) error {
	q, err := seriesQuery(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	if len(q.DeviceIDs) > 0 && (q.GroupID != 0 || q.Tag != "") {
		return lodestone.Errorf(lodestone.EINVALID, "group_id and tag scope the fleet series; "+
			"leave them out when naming devices with device_id")
	}
	q.Fleet = len(q.DeviceIDs) == 0
	return s.writeSeries(w, r, q)
}

func (s *Server) writeSeries(w http.ResponseWriter, r *http.Request, q lodestone.SeriesQuery) error {
	if s.deps.Series == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "metric series are not available on this store")
	}
	// The store normalizes too; doing it here first reports the step that the answer uses even when the
	// store answers an error.
	q, err := q.Normalize()
	if err != nil {
		return err
	}
	found, err := s.deps.Series.MetricSeries(r.Context(), q)
	if err != nil {
		return err
	}
	out := seriesJSON{Key: q.Key, From: ts(q.From), To: ts(q.To), FromMS: q.From.UnixMilli(),
		ToMS: q.To.UnixMilli(), StepMS: q.Step.Milliseconds(), Series: make([]seriesOneJSON, len(found))}
	if q.Fleet {
		out.Fleet, out.Tag = true, q.Tag
		if q.GroupID != 0 {
			out.GroupID = &q.GroupID
		}
	}
	for i, sr := range found {
		one := seriesOneJSON{DeviceID: sr.DeviceID, Buckets: make([]bucketJSON, len(sr.Buckets))}
		for j, b := range sr.Buckets {
			one.Buckets[j] = bucketJSON{StartMS: b.Start.UnixMilli(), Count: b.Count, Min: jsonFloat(b.Min),
				Max: jsonFloat(b.Max), Avg: jsonFloat(b.Avg), Last: jsonFloat(b.Last)}
		}
		out.Series[i] = one
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// seriesQuery reads key, from, to, step and the scope (device_id, repeated; group_id; tag) of a series request.
// to defaults to now and from to a day before to.
func seriesQuery(v url.Values, now time.Time) (lodestone.SeriesQuery, error) {
	q := lodestone.SeriesQuery{Key: v.Get("key"), Tag: v.Get("tag"), DeviceIDs: v["device_id"]}
	if q.Key == "" {
		return q, lodestone.Errorf(lodestone.EINVALID, "key is required: the metric key to chart")
	}
	var err error
	if q.From, err = timeParam(v, "from"); err != nil {
		return q, err
	}
	if q.To, err = timeParam(v, "to"); err != nil {
		return q, err
	}
	if q.To.IsZero() {
		q.To = now.UTC().Truncate(time.Millisecond)
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-defaultSeriesRange)
	}
	if !q.To.After(q.From) {
		return q, lodestone.Errorf(lodestone.EINVALID, "to (%s) must be after from (%s)", ts(q.To), ts(q.From))
	}
	if s := v.Get("step"); s != "" {
		if q.Step, err = parseStep(s); err != nil {
			return q, err
		}
	}
	if g := v.Get("group_id"); g != "" {
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil || id <= 0 {
			return q, lodestone.Errorf(lodestone.EINVALID, "group_id must be a positive integer, got %q", g)
		}
		q.GroupID = id
	}
	if len(q.DeviceIDs) > lodestone.MaxSeriesDevices {
		return q, lodestone.Errorf(lodestone.EINVALID, "at most %d device_id values per request, got %d",
			lodestone.MaxSeriesDevices, len(q.DeviceIDs))
	}
	return q, nil
}

// parseStep reads a bucket width: a Go duration such as 30s, 5m or 1h, or a number of seconds.
func parseStep(s string) (time.Duration, error) {
	bad := lodestone.Errorf(lodestone.EINVALID,
		"step must be a duration such as 30s, 5m or 1h, or whole seconds, and not negative; got %q", s)
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

type seriesJSON struct {
	Key     string          `json:"key"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	FromMS  int64           `json:"from_ms"`
	ToMS    int64           `json:"to_ms"`
	StepMS  int64           `json:"step_ms"`
	Fleet   bool            `json:"fleet,omitempty"`
	GroupID *int64          `json:"group_id,omitempty"`
	Tag     string          `json:"tag,omitempty"`
	Series  []seriesOneJSON `json:"series"`
}

type seriesOneJSON struct {
	DeviceID string       `json:"device_id,omitempty"`
	Buckets  []bucketJSON `json:"buckets"`
}

type bucketJSON struct {
	StartMS int64     `json:"start_ms"`
	Count   int64     `json:"count"`
	Min     jsonFloat `json:"min"`
	Max     jsonFloat `json:"max"`
	Avg     jsonFloat `json:"avg"`
	Last    jsonFloat `json:"last"`
}

// jsonFloat is a float that JSON can carry: NaN and infinities (which devices send) become null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}
