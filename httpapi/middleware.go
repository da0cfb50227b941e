package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
)

type requestKey struct{}

// requestInfo is what the outermost middleware learns about a request.
type requestInfo struct {
	id       string
	clientIP string
}

func infoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// RequestID returns the id of the request ctx belongs to ("" outside a request).
func RequestID(ctx context.Context) string { return infoFrom(ctx).id }

// ClientIP returns the client address of the request ctx belongs to: the peer, or with trusted proxies the
// last address in X-Forwarded-For that is not one of them.
func ClientIP(ctx context.Context) string { return infoFrom(ctx).clientIP }

// validRequestID accepts a caller's X-Request-Id only when it is short and plain, so logs cannot be forged.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' ||
			c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// requests gives every request an id (the caller's X-Request-Id if it is plain, else a new one), echoes it in
// the response, resolves the client IP and logs the request at debug level.
func (s *Server) requests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		ri := &requestInfo{id: id, clientIP: s.clientIP(r)}
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), requestKey{}, ri)
		// The audit log names where an action came from. An in-process caller (the MCP server) has said so
		// already; what it left out is this request's.
		ar := lodestone.AuditRequestFromContext(ctx)
		if ar.ClientAddr == "" {
			ar.ClientAddr = ri.clientIP
		}
		if ar.RequestID == "" {
			ar.RequestID = id
		}
		if ar.Via == "" {
			ar.Via = lodestone.ViaAPI
		}
		ctx = lodestone.NewContextWithAuditRequest(ctx, ar)
		next.ServeHTTP(rec, r.WithContext(ctx))
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.code(),
				"client", ri.clientIP, "duration", time.Since(start))
		}
	})
}

// logFor returns the server's logger with the request's id.
func (s *Server) logFor(r *http.Request) *slog.Logger {
	if id := RequestID(r.Context()); id != "" {
		return s.log.With("request_id", id)
	}
	return s.log
}

// clientIP is the peer address, unless the peer is a trusted proxy: then X-Forwarded-For is read from the right
// and the first address that is not a trusted proxy is the client.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			break // a malformed hop: trust nothing further left
		}
		if !s.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

func (s *Server) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads TRUSTED_PROXIES: comma-separated addresses or CIDR prefixes.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// statusRecorder remembers the status for the access log. It passes Flush through and unwraps for
// http.ResponseController, so streaming handlers (SSE) work behind it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// FlushError lets http.ResponseController see a failed flush, so a stream ends when its client stops reading.
func (r *statusRecorder) FlushError() error {
	return http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// checkRequestText refuses a request whose decoded path (and so every path value) or any query parameter name or value
// holds NUL or invalid UTF-8, or whose query string is malformed: no handler or store ever sees such text. The
// X- headers (X-Firmware-Version, X-Signer, X-Notes, X-Filename, X-Device-Id ...) are stored as text too; net/http
// already refuses NUL in a header but passes bytes that are not UTF-8.
func checkRequestText(r *http.Request) error {
	for name, vs := range r.Header {
		if !strings.HasPrefix(name, "X-") {
			continue
		}
		for _, v := range vs {
			if !cleanText(v) {
				return lodestone.Errorf(lodestone.EINVALID, "header %s must be UTF-8 text", name)
			}
		}
	}
	if !cleanText(r.URL.Path) {
		return lodestone.Errorf(lodestone.EINVALID, "the URL path must be UTF-8 text without NUL characters")
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return lodestone.Errorf(lodestone.EINVALID, "malformed query string")
	}
	for k, vs := range q {
		if !cleanText(k) {
			return lodestone.Errorf(lodestone.EINVALID, "query parameter names must be UTF-8 text without NUL characters")
		}
		for _, v := range vs {
			if !cleanText(v) {
				return lodestone.Errorf(lodestone.EINVALID,
					"query parameter %q must be UTF-8 text without NUL characters", k)
			}
		}
	}
	return nil
}

// cleanText reports whether s is UTF-8 without NUL, the text both backends store.
func cleanText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }
