package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// routesLogs registers the log and crash-upload read routes.
func (s *Server) routesLogs() {
	s.handle("GET /logs", AccessViewer, s.listLogs)
	s.handle("GET /logs/stream", AccessViewer, s.streamLogs)
	s.handle("GET /crash-uploads", AccessViewer, s.listCrashUploads)
}

// severities maps OTLP severity names to the lowest number of their range.
var severities = map[string]int32{"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21}

func severityParam(q map[string][]string) (int32, error) {
	v := strings.ToLower(strings.TrimSpace(first(q["severity"])))
	if v == "" {
		return 0, nil
	}
	if n, ok := severities[v]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(v, 10, 5)
	if err != nil || n > 24 {
		return 0, lodestone.Errorf(lodestone.EINVALID,
			"severity must be trace, debug, info, warn, error, fatal or a number 1-24, got %q", v)
	}
	return int32(n), nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (s *Server) logFilter(r *http.Request) (lodestone.LogFilter, error) {
	q := r.URL.Query()
	tf, err := telemetryFilter(q)
	if err != nil {
		return lodestone.LogFilter{}, err
	}
	f := lodestone.LogFilter{Project: q.Get("project"), DeviceID: q.Get("device"), Since: tf.Since, Until: tf.Until,
		Text: q.Get("q"), Limit: tf.Limit, Offset: tf.Offset}
	if f.DeviceID == "" {
		f.DeviceID = q.Get("device_id")
	}
	if len(f.Text) > 256 {
		return f, lodestone.Errorf(lodestone.EINVALID, "q is limited to 256 bytes")
	}
	f.MinSeverity, err = severityParam(q)
	return f, err
}

// listLogs answers GET /logs?device=&project=&since=&until=&severity=&q=&limit=&offset= with {"logs":[...]},
// newest first by record time.
func (s *Server) listLogs(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Logs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "log storage is not enabled")
	}
	f, err := s.logFilter(r)
	if err != nil {
		return err
	}
	recs, err := s.deps.Logs.FindLogs(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]lodestone.LogRecordJSON, len(recs))
	for i, rec := range recs {
		out[i] = rec.JSON()
	}
	writeJSON(w, http.StatusOK, map[string]any{"logs": out})
	return nil
}

// streamLogs is a live tail over server-sent events: each committed batch of a device's records that matches
// the filter (device, project, severity, q; no time range) is one "logs" event whose data is a JSON array.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request) error {
	if s.deps.LogEvents == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "live log tail is not enabled")
	}
	f, err := s.logFilter(r)
	if err != nil {
		return err
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	release, ok := s.openStream(w, r)
	if !ok {
		return nil
	}
	defer release()
	ctx := r.Context()
	events, err := s.deps.LogEvents.Subscribe(ctx, after)
	if err != nil {
		return err
	}
	// Every write has its own deadline (sseWriter), so a client that stops reading ends the handler.
	sw := s.newSSEWriter(w)
	if !sw.start([]byte(": tailing logs\n\n")) {
		return nil
	}
	keepAlive := time.NewTimer(s.cfg.KeepAlive)
	defer keepAlive.Stop()
	send := func(b []byte) bool {
		keepAlive.Reset(s.cfg.KeepAlive)
		return sw.send(b)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil // let shutdown finish instead of waiting out the stream
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return nil
			}
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() == nil {
					sw.dropped(after) // fell behind; the client reconnects with Last-Event-ID
				}
				return nil
			}
			after = ev.ID
			if ev.Type != lodestone.EventLogs {
				continue
			}
			data, ok := filterLogEvent(ev.Data, f)
			if !ok {
				continue
			}
			msg := "id: " + strconv.FormatInt(ev.ID, 10) + "\nevent: logs\ndata: " + string(data) + "\n\n"
			if !send([]byte(msg)) {
				return nil
			}
		}
	}
}

// filterLogEvent keeps the records of an event that match f; ok is false when none do.
func filterLogEvent(data []byte, f lodestone.LogFilter) ([]byte, bool) {
	var recs []lodestone.LogRecordJSON
	if err := json.Unmarshal(data, &recs); err != nil {
		return nil, false
	}
	if f.DeviceID == "" && f.Project == "" && f.MinSeverity == 0 && f.Text == "" {
		return data, len(recs) > 0
	}
	text := strings.ToLower(f.Text)
	kept := recs[:0]
	for _, r := range recs {
		if f.DeviceID != "" && r.DeviceID != f.DeviceID || f.Project != "" && r.Project != f.Project ||
			r.Severity < f.MinSeverity || text != "" && !strings.Contains(strings.ToLower(string(r.Body)), text) {
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		return nil, false
	}
	out, err := json.Marshal(kept)
	return out, err == nil
}

type crashUploadJSON struct {
	ID           int64           `json:"id"`
	Project      string          `json:"project"`
	InstallID    string          `json:"install_id"`
	Platform     string          `json:"platform"`
	Version      string          `json:"version"`
	Kind         string          `json:"kind"`
	Timestamp    time.Time       `json:"timestamp"`
	DumpSHA256   string          `json:"dump_sha256"`
	DumpSize     int64           `json:"dump_size"`
	DumpEncoding string          `json:"dump_content_encoding,omitempty"`
	Dedup        bool            `json:"dedup"`
	Attachments  []attachJSON    `json:"attachments"`
	Metadata     json.RawMessage `json:"metadata"`
	TokenID      string          `json:"token_id"`
	ReceivedAt   time.Time       `json:"received_at"`
}

type attachJSON struct {
	Key             string `json:"key"`
	ContentType     string `json:"content_type"`
	SHA256          string `json:"sha256"`
	Size            int64  `json:"size"`
	ContentEncoding string `json:"content_encoding,omitempty"`
	Dedup           bool   `json:"dedup"`
}

// listCrashUploads answers GET /crash-uploads?project=&install_id=&since=&until=&limit=&offset= with
// {"crash_uploads":[...]}, newest received first. Blobs are named by SHA-256 for the blob routes.
func (s *Server) listCrashUploads(w http.ResponseWriter, r *http.Request) error {
	if s.deps.CrashUploads == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "crash uploads are not enabled")
	}
	q := r.URL.Query()
	tf, err := telemetryFilter(q)
	if err != nil {
		return err
	}
	ups, err := s.deps.CrashUploads.FindCrashUploads(r.Context(), lodestone.CrashUploadFilter{
		Project: q.Get("project"), InstallID: strings.ToLower(q.Get("install_id")), Since: tf.Since, Until: tf.Until,
		Limit: tf.Limit, Offset: tf.Offset})
	if err != nil {
		return err
	}
	out := make([]crashUploadJSON, len(ups))
	for i, u := range ups {
		c := crashUploadJSON{ID: u.ID, Project: u.Project, InstallID: u.InstallID, Platform: u.Platform,
			Version: u.Version, Kind: u.Kind, Timestamp: u.Timestamp, DumpSHA256: u.Dump.SHA256, DumpSize: u.Dump.Size,
			DumpEncoding: u.DumpEncoding, Dedup: u.Dedup, Attachments: []attachJSON{},
			Metadata: json.RawMessage("null"), TokenID: u.TokenID, ReceivedAt: u.ReceivedAt}
		if json.Valid([]byte(u.Metadata)) {
			c.Metadata = json.RawMessage(u.Metadata)
		}
		for _, a := range u.Attachments {
			c.Attachments = append(c.Attachments, attachJSON{a.Key, a.ContentType, a.Blob.SHA256, a.Blob.Size,
				a.ContentEncoding, a.Dedup})
		}
		out[i] = c
	}
	writeJSON(w, http.StatusOK, map[string]any{"crash_uploads": out})
	return nil
}
