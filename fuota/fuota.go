// Package fuota serves the ESP32 FUOTA server's API (PascalBod/docker-fuota-server, contract in
// shared/specs/fuota.md) as an http.Handler, over lodestone's own OTA targets and firmware artifacts: a FUOTA
// row is a target (device id, the app_ver it must run, the artifact to install), and an update file is an artifact
// named by its path. Status codes, CSV formats and 403-on-bad-credentials are the reference's; its holes are
// closed: no SQL from strings, names never become file paths (blobs are content-addressed), bodies are bounded
// and streamed, credentials are never logged, a body/path device id mismatch and a row naming a missing file
// are 400s, and connections stay alive.
//
// The login is one pair shared by a whole ESP32 fleet and built into its firmware, so it reaches only what it
// made: it creates and replaces FUOTA's own files and rows, and everything else (artifacts uploaded through
// /ota/firmware, targets set through /ota/targets or by campaigns, lodestone's own devices) is read-only to it.
// An upload is a new immutable artifact each time (the path names the newest), and none is signed with the OTA
// signing key until a provisioner approves it (POST /ota/firmware/{id}/approve).
package fuota

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/lograte"
	"github.com/lodestone-fleet/lodestone/ota"
)

// Config configures the handler.
type Config struct {
	Username, Password string // US_AUTH_USERNAME / US_AUTH_PASSWORD; both required
	MaxFileBytes       int64  // largest update file; default 256 MiB
	Logger             *slog.Logger
}

// Handler is the FUOTA API.
type Handler struct {
	user, pass [sha256.Size]byte
	max        int64
	ota        *ota.Service
	blobs      lodestone.BlobStore
	log        *slog.Logger
	refused    lograte.Limiter // one WARN line about refused logins per 10 s, with the count left out
}

// New returns the handler; it refuses an empty username or password, since the API has no other protection.
func New(cfg Config, svc *ota.Service, blobs lodestone.BlobStore) (*Handler, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("fuota: US_AUTH_USERNAME and US_AUTH_PASSWORD must both be set")
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 256 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{user: sha256.Sum256([]byte(cfg.Username)), pass: sha256.Sum256([]byte(cfg.Password)),
		max: cfg.MaxFileBytes, ota: svc, blobs: blobs, log: cfg.Logger, refused: lograte.Limiter{Every: 10 * time.Second}}, nil
}

// authorized compares both credentials in constant time (hashed first, so lengths do not leak either).
func (h *Handler) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	us, ps := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(us[:], h.user[:])&subtle.ConstantTimeCompare(ps[:], h.pass[:]) == 1
}

// statusWriter remembers the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines for long transfers).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP authenticates, then routes by path segments exactly as the reference does.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	defer func() {
		// Method, path and outcome only: never headers, which carry the credentials.
		h.log.Debug("fuota request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"remote", r.RemoteAddr, "dur", time.Since(start))
	}()
	if !h.authorized(r) {
		// Logged so an operator sees an attack: who and from where, never the password.
		user, _, _ := r.BasicAuth()
		h.refused.Log(h.log, slog.LevelWarn, start, "fuota authentication failed", "remote", r.RemoteAddr,
			"user", strconv.Quote(user[:min(len(user), 64)]))
		sw.WriteHeader(http.StatusForbidden)
		return
	}
	// What the login changes is audited like an operator's change, in the same transaction (see lodestone.AuditFor).
	user, _, _ := r.BasicAuth()
	ctx := lodestone.NewContextWithPrincipal(r.Context(), &lodestone.Principal{Name: user, Kind: lodestone.ActorFUOTA})
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	id := make([]byte, 8)
	rand.Read(id)
	ctx = lodestone.NewContextWithAuditRequest(ctx, lodestone.AuditRequest{ClientAddr: host,
		RequestID: hex.EncodeToString(id), Via: lodestone.ViaAPI})
	r = r.WithContext(ctx)
	if err := h.route(sw, r); err != nil {
		h.fail(sw, r, err)
	}
}

// fail answers an error with its status and a one-line plain-text reason (the device reads only the status).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch lodestone.ErrorCode(err) {
	case lodestone.EINVALID:
		status = http.StatusBadRequest
	case lodestone.ENOTFOUND:
		status = http.StatusNotFound
	case lodestone.ETOOLARGE:
		status = http.StatusRequestEntityTooLarge
	case lodestone.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
		if lodestone.StorageFull(err) {
			w.Header().Set("Retry-After", strconv.Itoa(int(lodestone.StorageFullRetry.Seconds())))
			lodestone.LogStorageFull(h.log, err, "method", r.Method, "path", r.URL.Path)
		}
	case lodestone.ECONFLICT:
		status = http.StatusConflict
	case lodestone.EFORBIDDEN:
		status = http.StatusForbidden // with a reason, unlike the empty 403 of bad credentials
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	if status == http.StatusInternalServerError {
		h.log.Error("fuota request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, lodestone.ErrorMessage(err)+"\n")
}

func invalid(format string, args ...any) error {
	return lodestone.Errorf(lodestone.EINVALID, format, args...)
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request) error {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch segs[0] {
	case "devices":
		switch {
		case len(segs) == 1:
			if r.Method != http.MethodGet {
				return methodNotAllowed(w, "GET")
			}
			return h.listDevices(w, r)
		case len(segs) > 2 || segs[1] == "":
			return invalid("expected /devices/<device_id>")
		}
		id := segs[1]
		if !validDeviceID(id) {
			return invalid("device id must be 1-128 visible characters without quotes")
		}
		switch r.Method {
		case http.MethodGet:
			return h.check(w, r, id)
		case http.MethodPut:
			return h.putDevice(w, r, id)
		case http.MethodDelete:
			return h.deleteDevice(w, r, id)
		}
		return methodNotAllowed(w, "GET, PUT, DELETE")
	case "files":
		if len(segs) < 2 {
			return invalid("expected /files/<update_file_path>")
		}
		name := strings.Join(segs[1:], "/")
		if !validFileName(name) {
			return invalid("update file path must be 1-255 characters, no quotes, backslashes, control " +
				"characters, empty, '.' or '..' segments")
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.getFile(w, r, name)
		case http.MethodPut:
			return h.putFile(w, r, name)
		}
		return methodNotAllowed(w, "GET, HEAD, PUT")
	}
	return lodestone.Errorf(lodestone.ENOTFOUND, "no such resource; use /devices or /files")
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	w.WriteHeader(http.StatusMethodNotAllowed)
	return nil
}

func validDeviceID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' {
			return false
		}
	}
	return true
}

// validFileName keeps update file paths to names that are safe anywhere they are shown or sent; they are never
// used as file-system paths (the bytes live in the content-addressed blob store).
func validFileName(s string) bool {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, "\"\\") || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// validText accepts 1-max bytes of UTF-8 without control characters: what both backends store as given.
func validText(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// csvField quotes a value as the reference writes it, doubling any quote inside (RFC 4180).
func csvField(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// listDevices is GET /devices: one CSV line per target, FUOTA's and (read-only) everyone else's. app_ver is the
// version the device must run for the row to apply (empty for targets set through lodestone's API, which apply to
// any other version); the path is the artifact's name (empty for a target without an artifact).
func (h *Handler) listDevices(w http.ResponseWriter, r *http.Request) error {
	targets, err := h.ota.Store().FindTargets(r.Context())
	if err != nil {
		return err
	}
	names := map[int64]string{}
	var buf bytes.Buffer
	for _, t := range targets {
		app, path := "", ""
		if t.FromVersion != nil {
			app = *t.FromVersion
		}
		if t.FirmwareID != nil {
			n, ok := names[*t.FirmwareID]
			if !ok {
				if f, err := h.ota.Store().FindFirmwareByID(r.Context(), *t.FirmwareID); err == nil {
					n = h.fileName(r.Context(), f)
				}
				names[*t.FirmwareID] = n
			}
			path = n
		}
		buf.WriteString(csvField(t.DeviceID) + "," + csvField(app) + "," + csvField(path) + "\n")
	}
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Disposition", "attachment")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	return nil
}

// check is the device's GET /devices/<id>?app_ver=<v>.
func (h *Handler) check(w http.ResponseWriter, r *http.Request, id string) error {
	if r.URL.RawQuery == "" {
		return invalid("missing query string: ?app_ver=<version>")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	if len(q["app_ver"]) != 1 {
		return invalid("app_ver must be given exactly once")
	}
	ver := q.Get("app_ver")
	o, ok, err := h.ota.Lookup(r.Context(), id, &lodestone.DeviceInfo{FirmwareVersion: ver})
	if err != nil {
		return err // no target: 404, as the reference answers for an unknown device
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if o.FirmwareID == 0 {
		return lodestone.Errorf(lodestone.ENOTFOUND, "update file not found")
	}
	f := &lodestone.Firmware{ID: o.FirmwareID, Filename: o.Filename}
	if o.FUOTAPath != "" {
		f.FUOTAPath = &o.FUOTAPath
	}
	name := h.fileName(r.Context(), f)
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Length", strconv.Itoa(len(name)))
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, name)
	return nil
}

// fileName is the update file path that GET /files resolves to f: its FUOTA path while it is the newest upload
// there, else its own unique name.
func (h *Handler) fileName(ctx context.Context, f *lodestone.Firmware) string {
	if f.FUOTAPath != nil {
		if cur, err := h.ota.Store().FindFirmwareByFUOTAPath(ctx, *f.FUOTAPath); err == nil && cur.ID == f.ID {
			return *f.FUOTAPath
		}
	}
	return f.Filename
}

// findFile resolves an update file path: the newest FUOTA upload under it, else (read-only) the artifact of that
// exact name, which may be an operator's upload that an operator's target names.
func (h *Handler) findFile(ctx context.Context, name string) (*lodestone.Firmware, error) {
	f, err := h.ota.Store().FindFirmwareByFUOTAPath(ctx, name)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return h.ota.Store().FindFirmwareByFilename(ctx, name)
	}
	return f, err
}

// putDevice is PUT /devices/<id> with one CSV record "<device_id>","<app_ver>","<update_file_path>".
func (h *Handler) putDevice(w http.ResponseWriter, r *http.Request, id string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		return invalid("body must be one CSV record under 4 KiB")
	}
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = 3
	recs, err := cr.ReadAll()
	if err != nil || len(recs) != 1 {
		return invalid(`body must be exactly one record: "<device_id>","<app_ver>","<update_file_path>"`)
	}
	rec := recs[0]
	if rec[0] != id {
		return invalid("device id %q in the body differs from %q in the path", rec[0], id)
	}
	if !validText(rec[1], 128) {
		return invalid("app_ver must be 1-128 characters of UTF-8 text without control characters")
	}
	if !validFileName(rec[2]) {
		return invalid("invalid update file path")
	}
	// A row names a FUOTA upload by its path; an artifact FUOTA did not upload cannot be targeted from here.
	f, err := h.ota.Store().FindFirmwareByFUOTAPath(r.Context(), rec[2])
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		if _, err := h.ota.Store().FindFirmwareByFilename(r.Context(), rec[2]); err == nil {
			return invalid("update file %q was not uploaded through FUOTA; set this target through /ota/targets",
				rec[2])
		}
		return invalid("update file %q does not exist: PUT /files/%s first", rec[2], rec[2])
	} else if err != nil {
		return err
	}
	app := rec[1]
	if err := h.ota.Store().SetFUOTATarget(r.Context(), &lodestone.OTATarget{DeviceID: id,
		TargetVersion: f.Version, TargetBuildID: f.BuildID, FirmwareID: &f.ID, FromVersion: &app,
		CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) deleteDevice(w http.ResponseWriter, r *http.Request, id string) error {
	if err := h.ota.Store().DeleteFUOTATarget(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// getFile streams an update file; Range requests resume an interrupted download.
func (h *Handler) getFile(w http.ResponseWriter, r *http.Request, name string) error {
	f, err := h.findFile(r.Context(), name)
	if err != nil {
		return err
	}
	b, err := h.blobs.Open(r.Context(), f.SHA256)
	if err != nil {
		return err
	}
	defer b.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", "attachment")
	hd.Set("ETag", `"`+f.SHA256+`"`)
	hd.Set("X-Firmware-SHA256", f.SHA256)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	http.ServeContent(w, r, "", f.CreatedAt, b)
	return nil
}

// putFile stores an update file under its path. Artifacts are immutable: the bytes become a new artifact that the
// path names from now on (FUOTA's own rows follow it); the previous upload stays as it was, with its blob, for
// whatever still uses it. A path that names an artifact FUOTA did not upload is a 409.
func (h *Handler) putFile(w http.ResponseWriter, r *http.Request, name string) error {
	if r.ContentLength > h.max {
		return lodestone.Errorf(lodestone.ETOOLARGE, "update file over the %d byte limit", h.max)
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Minute))
	ref, existed, err := h.blobs.Put(r.Context(), r.Body, h.max)
	if err != nil {
		return err
	}
	if ref.Size == 0 {
		return invalid("empty update file")
	}
	version := r.Header.Get("X-Firmware-Version")
	if version == "" {
		version = name
	} else if !validText(version, 64) {
		return invalid("X-Firmware-Version must be 1-64 characters of UTF-8 text without control characters")
	}
	var build uint64
	if v := r.Header.Get("X-Build-Id"); v != "" {
		if build, err = strconv.ParseUint(v, 10, 64); err != nil {
			return invalid("X-Build-Id must be an unsigned decimal integer")
		}
	}
	f := &lodestone.Firmware{Version: version, BuildID: build, SHA256: ref.SHA256, Size: ref.Size, Filename: name,
		CreatedAt: time.Now().UTC()}
	if _, err := h.ota.Store().PutFUOTAFirmware(r.Context(), f); err != nil {
		if !existed {
			h.dropBlob(context.WithoutCancel(r.Context()), ref.SHA256)
		}
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// dropBlob deletes a blob this request stored when no artifact (or ELF file) holds it.
func (h *Handler) dropBlob(ctx context.Context, sum string) {
	used, err := h.ota.Store().FirmwareBlobInUse(ctx, sum)
	if err == nil && !used {
		err = h.blobs.Delete(ctx, sum)
	}
	if err != nil {
		h.log.Warn("delete unused update file blob; the orphan sweep retries", "sha256", sum, "err", err)
	}
}
