package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lodestone-fleet/lodestone"
)

// defaultStabilityRange is the range of a stability request that names no from.
const defaultStabilityRange = 7 * 24 * time.Hour

// maxStabilityVersions bounds the version parameters of one request.
const maxStabilityVersions = 50

func (s *Server) routesStability() {
	s.handle("GET /stability", AccessViewer, s.stability)
	s.handle("GET /devices/{id}/timeline", AccessViewer, s.deviceTimeline)
}

type stabilityIssueJSON struct {
	IssueID     int64  `json:"issue_id"`
	Title       string `json:"title"`
	Devices     int    `json:"devices"`
	Occurrences int    `json:"occurrences"`
}

type stabilityComparisonJSON struct {
	Version                string  `json:"version"`
	CrashFreeHoursPctDelta float64 `json:"crash_free_hours_pct_delta"`
	FaultsRatio            float64 `json:"faults_ratio"`
	RebootsRatio           float64 `json:"reboots_ratio"`
}

type versionStabilityJSON struct {
	Version           string                   `json:"version"`
	Devices           int                      `json:"devices"`
	DeviceHours       float64                  `json:"device_hours"`
	CrashHours        float64                  `json:"crash_hours"`
	CrashFreeHoursPct float64                  `json:"crash_free_hours_pct"`
	Faults            int                      `json:"faults"`
	FaultsPer1000h    float64                  `json:"faults_per_1000h"`
	UnexpectedReboots int                      `json:"unexpected_reboots"`
	RebootsPer1000h   float64                  `json:"reboots_per_1000h"`
	RebootsByReason   map[string]int           `json:"reboots_by_reason"`
	TopIssues         []stabilityIssueJSON     `json:"top_issues"`
	Previous          *string                  `json:"previous"`
	VsPrevious        *stabilityComparisonJSON `json:"vs_previous"`
}

type stabilityJSON struct {
	From     string                 `json:"from"`
	To       string                 `json:"to"`
	FromMS   int64                  `json:"from_ms"`
	ToMS     int64                  `json:"to_ms"`
	Group    string                 `json:"group"`
	Tag      string                 `json:"tag"`
	Versions []versionStabilityJSON `json:"versions"`
}

// stabilityQuery reads from, to, group, tag and version (repeated) of a stability request.
func stabilityQuery(v url.Values, now time.Time) (lodestone.StabilityQuery, error) {
	q := lodestone.StabilityQuery{Group: v.Get("group"), Tag: v.Get("tag"), Versions: v["version"]}
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
		q.From = q.To.Add(-defaultStabilityRange)
	}
	if len(q.Versions) > maxStabilityVersions {
		return q, lodestone.Errorf(lodestone.EINVALID, "at most %d version parameters", maxStabilityVersions)
	}
	return q, lodestone.ValidateStabilityQuery(q)
}

// stability answers GET /stability.
func (s *Server) stability(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Stability == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "stability is not available on this store")
	}
	q, err := stabilityQuery(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	rep, err := s.deps.Stability.Stability(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, StabilityJSON(rep, q))
	return nil
}

// StabilityJSON is the JSON of GET /stability, which `lodestone report stability --json` prints too.
func StabilityJSON(rep lodestone.StabilityReport, q lodestone.StabilityQuery) any {
	out := stabilityJSON{From: ts(rep.From), To: ts(rep.To), FromMS: rep.From.UnixMilli(), ToMS: rep.To.UnixMilli(),
		Group: q.Group, Tag: q.Tag, Versions: make([]versionStabilityJSON, len(rep.Versions))}
	for i, v := range rep.Versions {
		j := versionStabilityJSON{Version: v.Version, Devices: v.Devices, DeviceHours: v.DeviceHours,
			CrashHours: v.CrashHours, CrashFreeHoursPct: v.CrashFreeHoursPct, Faults: v.Faults,
			FaultsPer1000h: v.FaultsPer1000h, UnexpectedReboots: v.UnexpectedReboots, RebootsPer1000h: v.RebootsPer1000h,
			RebootsByReason: v.RebootsByReason, TopIssues: make([]stabilityIssueJSON, len(v.TopIssues))}
		if j.RebootsByReason == nil {
			j.RebootsByReason = map[string]int{}
		}
		for k, is := range v.TopIssues {
			j.TopIssues[k] = stabilityIssueJSON{IssueID: is.IssueID, Title: is.Title, Devices: is.Devices,
				Occurrences: is.Occurrences}
		}
		if v.Previous != "" {
			p := v.Previous
			j.Previous = &p
		}
		if c := v.VsPrevious; c != nil {
			j.VsPrevious = &stabilityComparisonJSON{Version: c.Version, CrashFreeHoursPctDelta: c.CrashFreeHoursPctDelta,
				FaultsRatio: c.FaultsRatio, RebootsRatio: c.RebootsRatio}
		}
		out.Versions[i] = j
	}
	return out
}

type timelineLogJSON struct {
	Time     string `json:"time"`
	Severity string `json:"severity"`
	Body     string `json:"body"`
}

type timelineEntryJSON struct {
	At         string            `json:"at"`
	AtMS       int64             `json:"at_ms"`
	Kind       string            `json:"kind"`
	ID         int64             `json:"id"`
	Summary    string            `json:"summary"`
	Reason     string            `json:"reason,omitempty"`
	ReasonCode *int              `json:"reason_code,omitempty"`
	Unexpected *bool             `json:"unexpected,omitempty"`
	Version    string            `json:"version,omitempty"`
	IssueID    *int64            `json:"issue_id,omitempty"`
	Logs       []timelineLogJSON `json:"logs,omitempty"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to,omitempty"`
	Detail     string            `json:"detail,omitempty"`
}

type timelineJSON struct {
	DeviceID string              `json:"device_id"`
	Entries  []timelineEntryJSON `json:"entries"`
	Cursor   *string             `json:"cursor"` // the next, older page's cursor; null at the end
	Next     *string             `json:"next"`   // the next page's URL; null at the end
}

// deviceTimeline answers GET /devices/{id}/timeline.
func (s *Server) deviceTimeline(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Timeline == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "device timelines are not available on this store")
	}
	v := r.URL.Query()
	q := lodestone.TimelineQuery{Cursor: v.Get("cursor")}
	var err error
	if q.From, err = timeParam(v, "from"); err != nil {
		return err
	}
	if q.To, err = timeParam(v, "to"); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return lodestone.Errorf(lodestone.EINVALID, "to (%s) must be after from (%s)", ts(q.To), ts(q.From))
	}
	if q.Limit, err = boundedInt(v, "limit", 1, lodestone.MaxTimelineLimit); err != nil {
		return err
	}
	if q.LogsPerFault, err = boundedInt(v, "logs_per_fault", 0, lodestone.MaxLogsPerFault); err != nil {
		return err
	}
	if lw := v.Get("log_window"); lw != "" {
		d, err := time.ParseDuration(lw)
		if err != nil || d < 0 || d > lodestone.MaxLogWindow {
			return lodestone.Errorf(lodestone.EINVALID, "log_window must be a duration from 0s to %s (e.g. 30s), got %q",
				lodestone.MaxLogWindow, lw)
		}
		q.LogWindow = d
		if d == 0 {
			q.LogWindow = -1 // no logs
		}
	}
	if v.Get("logs_per_fault") == "0" {
		q.LogWindow = -1
	}
	d, err := s.findDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	q.DeviceID = d.DeviceID
	page, err := s.deps.Timeline.DeviceTimeline(r.Context(), q)
	if err != nil {
		return err
	}
	out := timelineJSON{DeviceID: d.DeviceID, Entries: make([]timelineEntryJSON, len(page.Entries))}
	for i, e := range page.Entries {
		j := timelineEntryJSON{At: ts(e.At), AtMS: e.At.UnixMilli(), Kind: e.Kind, ID: e.ID, Summary: e.Summary,
			Version: e.Version, IssueID: e.IssueID, From: e.From, To: e.To, Detail: e.Detail}
		if e.Kind == lodestone.TimelineReboot {
			code, unexpected := e.ReasonCode, e.Unexpected
			j.Reason, j.ReasonCode, j.Unexpected = e.Reason, &code, &unexpected
		}
		for _, l := range e.Logs {
			j.Logs = append(j.Logs, timelineLogJSON{Time: l.Time.Format(time.RFC3339Nano), Severity: l.Severity,
				Body: l.Body})
		}
		out.Entries[i] = j
	}
	if page.Next != "" {
		c := page.Next
		nv := url.Values{}
		for k, vals := range v {
			nv[k] = slices.Clone(vals)
		}
		nv.Set("cursor", c)
		next := r.URL.Path + "?" + nv.Encode()
		out.Cursor, out.Next = &c, &next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// boundedInt reads an optional integer parameter within [lo, hi]; absent is 0.
func boundedInt(v url.Values, name string, lo, hi int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, lodestone.Errorf(lodestone.EINVALID, "%s must be an integer from %d to %d, got %q", name, lo, hi, s)
	}
	return n, nil
}

// stabilityTTL is how long a scrape reuses the stability figures: they change by the hour.
const stabilityTTL = time.Minute

// maxStabilityGauges bounds the versions exported to Prometheus (the most observed ones), so a fleet with many
// builds cannot blow up the series count.
const maxStabilityGauges = 20

// stabilityCollector exports the last 24 hours' stability per firmware version.
type stabilityCollector struct {
	reader lodestone.StabilityReader
	log    *Server

	mu   sync.Mutex
	at   time.Time
	last lodestone.StabilityReport
	ok   bool
}

var stabilityDescs = []struct {
	desc  *prometheus.Desc
	value func(v *lodestone.VersionStability) float64
}{
	{prometheus.NewDesc("lodestone_stability_device_hours", "Device-hours observed in the last 24 hours, by firmware version.",
		[]string{"version"}, nil), func(v *lodestone.VersionStability) float64 { return v.DeviceHours }},
	{prometheus.NewDesc("lodestone_stability_crash_free_hours_percent",
		"Share of the last 24 hours' observed device-hours without a fault, by firmware version.",
		[]string{"version"}, nil), func(v *lodestone.VersionStability) float64 { return v.CrashFreeHoursPct }},
	{prometheus.NewDesc("lodestone_stability_faults_per_1000h",
		"Faults per 1,000 device-hours over the last 24 hours, by firmware version.",
		[]string{"version"}, nil), func(v *lodestone.VersionStability) float64 { return v.FaultsPer1000h }},
	{prometheus.NewDesc("lodestone_stability_unexpected_reboots_per_1000h",
		"Unexpected reboots per 1,000 device-hours over the last 24 hours, by firmware version.",
		[]string{"version"}, nil), func(v *lodestone.VersionStability) float64 { return v.RebootsPer1000h }},
	{prometheus.NewDesc("lodestone_stability_devices", "Devices observed in the last 24 hours, by firmware version.",
		[]string{"version"}, nil), func(v *lodestone.VersionStability) float64 { return float64(v.Devices) }},
}

func (c *stabilityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stabilityDescs {
		ch <- d.desc
	}
}

func (c *stabilityCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.at) >= stabilityTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		now := time.Now()
		rep, err := c.reader.Stability(ctx, lodestone.StabilityQuery{From: now.Add(-24 * time.Hour), To: now})
		cancel()
		c.at, c.last, c.ok = now, rep, err == nil
		if err != nil {
			c.log.log.Warn("stability for prometheus failed", "err", err)
		}
	}
	rep, ok := c.last, c.ok
	c.mu.Unlock()
	if !ok {
		return
	}
	for i := range rep.Versions[:min(len(rep.Versions), maxStabilityGauges)] {
		v := &rep.Versions[i]
		for _, d := range stabilityDescs {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, d.value(v), v.Version)
		}
	}
}
