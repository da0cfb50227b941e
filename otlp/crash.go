package otlp

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lodestone-fleet/lodestone"
)

// crashError is an answer of POST /v1/crashes, in detritus' shape.
type crashError struct {
	status int
	msg    string
}

func cerr(status int, format string, args ...any) *crashError {
	return &crashError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeCrashError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// crashUpload is POST /v1/crashes, detritus' multipart upload (spec §1.5), step for step.
func (s *Server) crashUpload(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id, dedup, e := s.storeCrash(r.Context(), r, tokenFrom(r.Context()))
	if e != nil {
		s.countRequest("crashes", strconv.Itoa(e.status), time.Since(start))
		switch e.status {
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "2")
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", strconv.Itoa(int(lodestone.StorageFullRetry.Seconds())))
		}
		writeCrashError(w, e.status, e.msg)
		return
	}
	s.countRequest("crashes", "201", time.Since(start))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(struct {
		ID    string `json:"id"`
		Dedup bool   `json:"dedup"`
	}{id, dedup})
}

func (s *Server) storeCrash(ctx context.Context, r *http.Request, tok *Token) (string, bool, *crashError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", false, cerr(400, "bad request: missing content-type header")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return "", false, cerr(400, "bad request: missing multipart boundary")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	part, err := mr.NextRawPart()
	if errors.Is(err, io.EOF) {
		return "", false, cerr(400, "missing multipart part `metadata`")
	} else if err != nil {
		return "", false, bodyErr(err)
	}
	if part.FormName() != "metadata" {
		return "", false, cerr(400, "bad request: first multipart part must be `metadata`")
	}
	raw, err := io.ReadAll(io.LimitReader(part, maxMetadataBytes+1))
	if err != nil {
		return "", false, bodyErr(err)
	}
	if len(raw) > maxMetadataBytes {
		return "", false, cerr(413, "payload exceeds maximum size of %d bytes", maxMetadataBytes)
	}
	md, e := parseCrashMetadata(raw)
	if e != nil {
		return "", false, e
	}
	if !tok.Permits(md.Source.Project, md.Source.InstallID) {
		return "", false, cerr(403, "token is not permitted to write this source")
	}
	if !s.crashRL.allow(tok.ID, md.Source.Project+"/"+md.Source.InstallID) {
		return "", false, cerr(429, "crash rate limit exceeded")
	}
	if sch := s.cfg.Tokens.Schemas.get(md.Source.Project, SchemaCrashMetadata); sch != nil {
		// The instance is the metadata as detritus re-serialises it, before any blob is stored.
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(md.normalized(nil)))
		if err != nil {
			return "", false, cerr(500, "internal server error: %v", err)
		}
		msgs, ok := schemaErrors(sch, inst)
		if !ok {
			return "", false, cerr(500, "internal server error: schema validation")
		}
		if len(msgs) > 0 {
			s.metrics.validation.WithLabelValues("crashes").Inc()
			return "", false, cerr(422, "metadata schema validation failed: %s", truncate(strings.Join(msgs, "; "), 4096))
		}
	}

	// Every part is read from the client into a spool first, without the janitor's lock: a slow or stalled
	// client must hold up neither the janitor nor, through the janitor's waiting writer lock, other uploads.
	parts, e := s.spoolParts(mr)
	defer parts.release()
	if e != nil {
		return "", false, e
	}
	u := &lodestone.CrashUpload{Project: md.Source.Project, InstallID: md.Source.InstallID,
		Platform: md.Source.Platform, Version: md.Source.Version, Kind: md.Kind, Timestamp: md.time,
		TokenID: tok.ID, ReceivedAt: s.now().UTC()}
	haveDump := false
	for _, p := range parts {
		haveDump = haveDump || p.name == "dump"
	}
	if !haveDump {
		return "", false, cerr(400, "missing multipart part `dump`")
	}

	// From the first blob Put to the index commit, the janitor must not sweep: a blob this upload dedups onto
	// may be one it was about to delete. The spool is local, so the lock is held for storage time only.
	s.gc.RLock()
	defer s.gc.RUnlock()
	var stored []string // blobs this request created, removed again if it fails
	fail := func(e *crashError) (string, bool, *crashError) {
		s.orphans.add(stored...)
		return "", false, e
	}
	for _, p := range parts {
		r, err := p.reader()
		if err != nil {
			return fail(s.storageErr("crash upload: read spool", err))
		}
		ref, existed, err := s.deps.Blobs.Put(ctx, r, s.cfg.MaxDumpBytes)
		if err != nil {
			if lodestone.ErrorCode(err) == lodestone.ETOOLARGE {
				return fail(cerr(413, "payload exceeds maximum size of %d bytes", s.cfg.MaxDumpBytes))
			}
			if errors.Is(err, context.Canceled) {
				return fail(cerr(499, "request canceled"))
			}
			return fail(s.storageErr("crash upload: store blob", err))
		}
		if !existed {
			stored = append(stored, ref.SHA256)
		}
		if p.name == "dump" {
			u.Dump, u.Dedup, u.DumpEncoding = ref, existed, p.enc
			continue
		}
		u.Attachments = append(u.Attachments, lodestone.CrashAttachment{Key: strings.TrimPrefix(p.name, "attach:"),
			ContentType: p.ctype, Blob: ref, ContentEncoding: p.enc, Dedup: existed})
	}
	u.Metadata = md.normalized(u)
	if err := s.deps.Crashes.CreateCrashUpload(ctx, u); err != nil {
		return fail(s.storageErr("crash upload: store index", err))
	}
	s.metrics.bytesIngested.WithLabelValues("crashes").Add(float64(u.Dump.Size))
	if u.Dedup {
		s.metrics.dedupHits.Inc()
	}
	return u.Dump.SHA256, u.Dedup, nil
}

// storageErr answers a failed write: a full disk or database is a 503 that clients retry later (logged once a
// minute, however many uploads it refuses), any other failure detritus' 500.
func (s *Server) storageErr(what string, err error) *crashError {
	if lodestone.StorageFull(err) {
		lodestone.LogStorageFull(s.log, err, "route", "POST /v1/crashes")
		return cerr(http.StatusServiceUnavailable, "%s", lodestone.MsgStorageFull)
	}
	s.log.Error(what, "err", err)
	return cerr(http.StatusInternalServerError, "storage I/O error")
}

func multipartErr(err error) *crashError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return cerr(413, "payload exceeds maximum size of %d bytes", mbe.Limit)
	}
	return cerr(400, "bad request: malformed multipart body: %v", err)
}

// crashMetadata is detritus' CrashMetadata; pointers tell a missing key from a zero value, since every field but
// panic_text is required.
type crashMetadata struct {
	SchemaVersion *uint32 `json:"schema_version"`
	Source        *struct {
		Project   *string `json:"project"`
		Platform  *string `json:"platform"`
		Version   *string `json:"version"`
		InstallID *string `json:"install_id"`
	} `json:"source"`
	Timestamp *string `json:"timestamp"`
	Kind      *string `json:"kind"`
	Build     *struct {
		GitSHA       *string `json:"git_sha"`
		Profile      *string `json:"profile"`
		TargetTriple *string `json:"target_triple"`
	} `json:"build"`
	PanicText   *string           `json:"panic_text"`
	Context     json.RawMessage   `json:"context"`
	Attachments *[]attachManifest `json:"attachments"`
}

type attachManifest struct {
	Key         *string `json:"key"`
	Filename    *string `json:"filename"`
	ContentType *string `json:"content_type"`
	Len         *uint64 `json:"len"`
}

// parsedMetadata is the checked metadata.
type parsedMetadata struct {
	Source struct{ Project, Platform, Version, InstallID string }
	Kind   string
	time   time.Time
	raw    crashMetadata
}

func parseCrashMetadata(raw []byte) (*parsedMetadata, *crashError) {
	var m crashMetadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, cerr(400, "invalid crash metadata: %v", err)
	}
	missing := func(field string) *crashError { return cerr(400, "invalid crash metadata: missing field `%s`", field) }
	if m.SchemaVersion == nil {
		return nil, missing("schema_version")
	}
	if m.Source == nil {
		return nil, missing("source")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"project", m.Source.Project}, {"platform", m.Source.Platform}, {"version", m.Source.Version},
		{"install_id", m.Source.InstallID}, {"timestamp", m.Timestamp}, {"kind", m.Kind}} {
		if f.v == nil {
			return nil, missing(f.name)
		}
	}
	if m.Build == nil || m.Build.GitSHA == nil || m.Build.Profile == nil || m.Build.TargetTriple == nil {
		return nil, missing("build")
	}
	if m.Context == nil {
		return nil, missing("context")
	}
	if m.Attachments == nil {
		return nil, missing("attachments")
	}
	for _, a := range *m.Attachments {
		if a.Key == nil || a.ContentType == nil || a.Len == nil {
			return nil, cerr(400, "invalid crash metadata: attachments need key, content_type and len")
		}
	}
	switch *m.Kind {
	case "Minidump", "PanicTarball", "RustcIce":
	default:
		return nil, cerr(400, "invalid crash metadata: unknown variant `%s`, expected one of `Minidump`, "+
			"`PanicTarball`, `RustcIce`", truncate(*m.Kind, 64))
	}
	ts, err := time.Parse(time.RFC3339Nano, *m.Timestamp)
	if err != nil {
		return nil, cerr(400, "invalid crash metadata: timestamp: %v", err)
	}
	if *m.SchemaVersion != 1 {
		return nil, cerr(412, "protocol version %d does not match 1", *m.SchemaVersion)
	}
	p := &parsedMetadata{Kind: *m.Kind, time: ts.UTC(), raw: m}
	p.Source.Project, p.Source.Platform, p.Source.Version = *m.Source.Project, *m.Source.Platform, *m.Source.Version
	if e := checkComponent("project", p.Source.Project); e != nil {
		return nil, cerr(400, "invalid storage path component `project`: `%s`", truncate(p.Source.Project, 64))
	}
	id, ok := normalizeUUID(*m.Source.InstallID)
	if !ok {
		return nil, cerr(400, "invalid crash metadata: install_id is not a UUID")
	}
	p.Source.InstallID = id
	return p, nil
}

// normalized is the metadata re-serialised as detritus writes it into its index: field order fixed, timestamp
// in UTC with chrono's 0/3/6/9-digit fraction, install id lowercase hyphenated, unknown fields dropped.
func (p *parsedMetadata) normalized(*lodestone.CrashUpload) string {
	type src struct {
		Project   string `json:"project"`
		Platform  string `json:"platform"`
		Version   string `json:"version"`
		InstallID string `json:"install_id"`
	}
	type build struct {
		GitSHA       string `json:"git_sha"`
		Profile      string `json:"profile"`
		TargetTriple string `json:"target_triple"`
	}
	type manifest struct {
		Key         string  `json:"key"`
		Filename    *string `json:"filename"`
		ContentType string  `json:"content_type"`
		Len         uint64  `json:"len"`
	}
	out := struct {
		SchemaVersion uint32          `json:"schema_version"`
		Source        src             `json:"source"`
		Timestamp     string          `json:"timestamp"`
		Kind          string          `json:"kind"`
		Build         build           `json:"build"`
		PanicText     *string         `json:"panic_text"`
		Context       json.RawMessage `json:"context"`
		Attachments   []manifest      `json:"attachments"`
	}{SchemaVersion: 1, Source: src(p.Source), Timestamp: chronoTime(p.time), Kind: p.Kind,
		Build:     build{*p.raw.Build.GitSHA, *p.raw.Build.Profile, *p.raw.Build.TargetTriple},
		PanicText: p.raw.PanicText, Context: p.raw.Context, Attachments: []manifest{}}
	for _, a := range *p.raw.Attachments {
		out.Attachments = append(out.Attachments, manifest{*a.Key, a.Filename, *a.ContentType, *a.Len})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(out)
	return strings.TrimSuffix(buf.String(), "\n")
}

// chronoTime renders t as chrono's RFC 3339 with Z: no fraction when whole seconds, else 3, 6 or 9 digits.
func chronoTime(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
	case ns%1e6 == 0:
		s += fmt.Sprintf(".%03d", ns/1e6)
	case ns%1e3 == 0:
		s += fmt.Sprintf(".%06d", ns/1e3)
	default:
		s += fmt.Sprintf(".%09d", ns)
	}
	return s + "Z"
}

// normalizeUUID accepts the simple, hyphenated, braced and urn:uuid: forms and returns lowercase hyphenated.
func normalizeUUID(s string) (string, bool) {
	s = strings.TrimPrefix(s, "urn:uuid:")
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	case 32:
	default:
		return "", false
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return "", false
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}
