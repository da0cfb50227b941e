package console

// This file holds the console's pages for the log explorer and crash uploads.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// LogsDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
type LogsDeps struct {
	Logs    lodestone.LogStore         // the explorer's queries and the export
	Scanner lodestone.LogScanner       // the live tail follows the table by id
	Head    lodestone.LogHead          // where a tail starts
	Uploads lodestone.CrashUploadStore // detritus crash uploads
	Blobs   lodestone.BlobStore        // their dumps and attachments
	// TailEvery is how often an open tail looks for new records; default 1 s.
	TailEvery time.Duration
}

// logsPages are this area's templates (templates/NAME.html).
var logsPages = []string{"logs", "crashuploads", "crashupload"}

func (c *Console) routesLogs() {
	c.mux.HandleFunc("GET /ui/logs", c.user(lodestone.RoleViewer, c.logsPage))
	c.mux.HandleFunc("GET /ui/logs/tail", c.user(lodestone.RoleViewer, c.logsTail))
	c.mux.HandleFunc("GET /ui/logs/export", c.user(lodestone.RoleViewer, c.logsExport))
	c.mux.HandleFunc("GET /ui/crash-uploads", c.user(lodestone.RoleViewer, c.crashUploads))
	c.mux.HandleFunc("GET /ui/crash-uploads/{id}", c.user(lodestone.RoleViewer, c.crashUpload))
	c.mux.HandleFunc("GET /ui/crash-uploads/{id}/dump", c.user(lodestone.RoleViewer, c.crashUploadDump))
	c.mux.HandleFunc("GET /ui/crash-uploads/{id}/attachments/{n}", c.user(lodestone.RoleViewer, c.crashUploadAttachment))
}

// logsNav marks Logs in the navigation on every page of this area.
func logsNav(pd *pageData) { pd.Nav = "logs" }

// logRanges are the explorer's quick time ranges, on the record time.
var logRanges = []struct {
	Name string
	D    time.Duration
}{{"15m", 15 * time.Minute}, {"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour},
	{"7d", 7 * 24 * time.Hour}, {"all", 0}}

// logSeverities are the severity filter's choices: OTLP's ranges by their lowest number.
var logSeverities = []struct {
	Name string
	Min  int32
}{{"trace", 1}, {"debug", 5}, {"info", 9}, {"warn", 13}, {"error", 17}, {"fatal", 21}}

// logQuery is the explorer's query as the form gives it, and the store filter it stands for.
type logQuery struct {
	Device   string
	Project  string
	Severity string
	Text     string
	Range    string // a logRanges name, or "" with Since/Until
	Since    string // datetime-local, UTC
	Until    string
	f        lodestone.LogFilter
}

// localLayouts are what a datetime-local input sends (seconds only when the user typed them); RFC 3339 too.
var localLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano}

func parseLocal(s string) (time.Time, error) {
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, lodestone.Errorf(lodestone.EINVALID, "%q is not a time like 2026-05-19T10:11 (UTC)", truncate(s, 40))
}

// parseLogQuery reads the explorer's query; what it cannot use is refused with a message, not ignored.
func parseLogQuery(q url.Values, now time.Time) (logQuery, error) {
	lq := logQuery{Device: strings.TrimSpace(q.Get("device")), Project: strings.TrimSpace(q.Get("project")),
		Severity: strings.ToLower(q.Get("severity")), Text: q.Get("q"), Range: q.Get("range"),
		Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	if len(lq.Device) > 256 || len(lq.Project) > 256 || len(lq.Text) > 256 {
		return lq, lodestone.Errorf(lodestone.EINVALID, "device, project and text are at most 256 bytes each")
	}
	f := lodestone.LogFilter{DeviceID: lq.Device, Project: lq.Project, Text: lq.Text}
	if lq.Severity != "" {
		i := slices.IndexFunc(logSeverities, func(s struct {
			Name string
			Min  int32
		}) bool {
			return s.Name == lq.Severity
		})
		if i < 0 {
			return lq, lodestone.Errorf(lodestone.EINVALID, "severity must be trace, debug, info, warn, error or fatal")
		}
		f.MinSeverity = logSeverities[i].Min
	}
	if lq.Since != "" || lq.Until != "" {
		lq.Range = ""
		var err error
		if lq.Since != "" {
			if f.Since, err = parseLocal(lq.Since); err != nil {
				return lq, err
			}
		}
		if lq.Until != "" {
			if f.Until, err = parseLocal(lq.Until); err != nil {
				return lq, err
			}
		}
		if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
			return lq, lodestone.Errorf(lodestone.EINVALID, "the range must start before it ends")
		}
	} else {
		if lq.Range == "" {
			lq.Range = "24h"
		}
		i := slices.IndexFunc(logRanges, func(r struct {
			Name string
			D    time.Duration
		}) bool {
			return r.Name == lq.Range
		})
		if i < 0 {
			return lq, lodestone.Errorf(lodestone.EINVALID, "range must be one of 15m, 1h, 6h, 24h, 7d, all")
		}
		if d := logRanges[i].D; d > 0 {
			f.Since = now.Add(-d)
		}
	}
	lq.f = f
	return lq, nil
}

// values is the query as URL parameters, for links that keep it (the tail, the export, the pages).
func (lq logQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"device": lq.Device, "project": lq.Project, "severity": lq.Severity,
		"q": lq.Text, "range": lq.Range, "since": lq.Since, "until": lq.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// match applies what the live tail's scan by id does not: project, severity, text and the record-time range.
// The text test is FindLogs' (a case-insensitive substring of the body as stored).
func (lq logQuery) match(r *lodestone.LogRecord, lowerText string) bool {
	f := lq.f
	return (f.Project == "" || r.Project == f.Project) && r.Severity >= f.MinSeverity && (lowerText == "" || strings.Contains(strings.ToLower(r.Body), lowerText)) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || r.Time.Before(f.Until))
}

// logRow is a record as the explorer shows it, on the page and in the live tail's JSON alike.
type logRow struct {
	ID       int64       `json:"id"`
	Time     time.Time   `json:"time"`
	TimeText string      `json:"time_text"` // UTC to the millisecond, as the page shows it
	Severity string      `json:"severity"`  // TRACE … FATAL, or the number when outside OTLP's ranges
	SevClass string      `json:"sev_class"`
	SevText  string      `json:"severity_text"`
	Project  string      `json:"project"`
	Device   string      `json:"device_id"`
	Body     string      `json:"body"` // a string body as text, any other as its JSON
	Attrs    [][2]string `json:"attributes"`
	TraceID  string      `json:"trace_id"`
	SpanID   string      `json:"span_id"`
	Event    string      `json:"event_name"`
	Observed time.Time   `json:"observed_time"`
	Received time.Time   `json:"received_at"`
}

func logSeverityName(n int32) string {
	if n < 1 || n > 24 {
		return strconv.Itoa(int(n))
	}
	return [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}[(n-1)/4]
}

// logJSONText shows a JSON value: a string as its text, anything else as compact JSON.
func logJSONText(raw string) string {
	var s string
	if json.Unmarshal([]byte(raw), &s) == nil {
		return s
	}
	return raw
}

func newLogRow(r *lodestone.LogRecord) logRow {
	sev := logSeverityName(r.Severity)
	row := logRow{ID: r.ID, Time: r.Time, TimeText: r.Time.UTC().Format("2006-01-02 15:04:05.000"), Severity: sev, SevClass: "sev-" + strings.ToLower(sev),
		SevText: r.SeverityText, Project: r.Project, Device: r.DeviceID, Body: logJSONText(r.Body), TraceID: r.TraceID,
		SpanID: r.SpanID, Event: r.EventName, Observed: r.ObservedTime, Received: r.ReceivedAt, Attrs: [][2]string{}}
	if r.Body == "" || r.Body == "null" {
		row.Body = ""
	}
	var attrs map[string]json.RawMessage
	if json.Unmarshal([]byte(r.Attributes), &attrs) == nil {
		keys := make([]string, 0, len(attrs))
		for k := range attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			row.Attrs = append(row.Attrs, [2]string{k, logJSONText(string(attrs[k]))})
		}
	}
	return row
}

type logsView struct {
	Query      logQuery
	Ranges     []string
	Severities []string
	Rows       []logRow
	Page       int
	Prev       string
	Next       string
	TailURL    string // the live tail of this query, from the newest record when the page was drawn
	ExportURL  string
	Err        string
}

const logsPerPage = 100

func (c *Console) logsPage(w http.ResponseWriter, r *request) error {
	if c.cfg.Logs.Logs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not keep OTLP logs")
	}
	v := logsView{Page: 1}
	for _, x := range logRanges {
		v.Ranges = append(v.Ranges, x.Name)
	}
	for _, s := range logSeverities {
		v.Severities = append(v.Severities, s.Name)
	}
	q := r.URL.Query()
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1 to 1000")
		}
		v.Page = n
	}
	lq, err := parseLogQuery(q, c.now())
	v.Query = lq
	if err != nil {
		// The form stays, with what was wrong, so the user can correct it.
		v.Err = lodestone.ErrorMessage(err)
		c.render(w, r.Request, http.StatusBadRequest, "logs", &pageData{Title: "Logs", Nav: "logs", User: r.user,
			CSRF: r.csrf, Data: v})
		return nil
	}
	// Where the tail starts: read before the page's query, so nothing stored in between is missed.
	var head int64
	if c.cfg.Logs.Head != nil && c.cfg.Logs.Scanner != nil {
		if head, err = c.cfg.Logs.Head.LastLogID(r.ctx()); err != nil {
			return err
		}
	}
	f := lq.f
	f.Limit, f.Offset = logsPerPage+1, (v.Page-1)*logsPerPage
	recs, err := c.cfg.Logs.Logs.FindLogs(r.ctx(), f)
	if err != nil {
		return err
	}
	vals := lq.values()
	link := func(p int) string {
		n := lq.values()
		n.Set("page", strconv.Itoa(p))
		return "/ui/logs?" + n.Encode()
	}
	if len(recs) > logsPerPage {
		recs = recs[:logsPerPage]
		v.Next = link(v.Page + 1)
	}
	if v.Page > 1 {
		v.Prev = link(v.Page - 1)
	}
	for _, rec := range recs {
		v.Rows = append(v.Rows, newLogRow(rec))
	}
	v.ExportURL = "/ui/logs/export?" + vals.Encode()
	if c.cfg.Logs.Scanner != nil && v.Page == 1 {
		tail := lq.values()
		tail.Set("after", strconv.FormatInt(head, 10))
		v.TailURL = "/ui/logs/tail?" + tail.Encode()
	}
	c.page(w, r, "logs", "Logs", v, logsNav)
	return nil
}
