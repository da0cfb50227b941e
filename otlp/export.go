package otlp

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/lodestone-fleet/lodestone"
)

const exportMethod = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

// logsService is the gRPC LogsService.
type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	s *Server
}

// authInterceptor answers a missing or bad token with a proper UNAUTHENTICATED status (detritusd sends a bare HTTP
// 401, which clients only guess at) and checks x-protocol-version.
func (s *Server) authInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	md, _ := metadata.FromIncomingContext(ctx)
	// Under grpc-go's own transport Handler's recovery and X-Request-Id do not apply; this does them. (Through
	// ServeHTTP the header is already set and this one is added beside it.)
	if _, viaHTTP := ctx.Value(http.ServerContextKey).(*http.Server); !viaHTTP {
		grpc.SetHeader(ctx, metadata.Pairs("x-request-id", requestID(first(md, "x-request-id"))))
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic in otlp handler", "path", info.FullMethod, "panic", v)
				resp, err = nil, status.Error(codes.Internal, "internal server error")
			}
		}()
	}
	var remote string
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	tok, serr := s.bearer(ctx, remote, endpointOf(info.FullMethod), first(md, "authorization"))
	if serr == nil {
		serr = s.checkVersion(md.Get("x-protocol-version"))
	}
	if serr != nil {
		s.countRequest(endpointOf(info.FullMethod), statusLabel(serr), time.Since(start))
		return nil, grpcStatus(serr)
	}
	resp, err = h(context.WithValue(ctx, tokenKey{}, tok), req)
	label := "200"
	if err != nil {
		label = "500"
		if st, ok := status.FromError(err); ok {
			label = grpcLabel(st.Code())
		}
	}
	s.countRequest(endpointOf(info.FullMethod), label, time.Since(start))
	return resp, err
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

// checkVersion applies detritus' x-protocol-version rule with its messages.
func (s *Server) checkVersion(vals []string) *statusError {
	if len(vals) == 0 {
		if s.cfg.RequireProtocolVersion {
			return errf(codePrecondition, "missing x-protocol-version metadata")
		}
		return nil
	}
	n, err := strconv.ParseUint(vals[0], 10, 32)
	if err != nil {
		return errf(codePrecondition, "x-protocol-version metadata is not a u32")
	}
	if n != 1 {
		return errf(codePrecondition, "protocol version %d does not match 1", n)
	}
	return nil
}

// Export implements the gRPC LogsService.
func (l *logsService) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (
	*collogspb.ExportLogsServiceResponse, error) {
	partial, err := l.s.export(ctx, tokenFrom(ctx), req)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &collogspb.ExportLogsServiceResponse{PartialSuccess: partial}, nil
}

// export checks every ResourceLogs entry (source, permission, rate limit) before anything is written, then
// stores all records in one group commit: an export is stored whole or not at all, so a client's retry never
// duplicates part of it. A record that cannot be stored (unstorable) is left out and reported in the partial
// success, which OTLP clients do not retry; the rest is stored, so one bad record never turns the export, or the
// group commit it shares with others, into a failure that a retry would repeat.
func (s *Server) export(ctx context.Context, tok *Token, req *collogspb.ExportLogsServiceRequest) (
	*collogspb.ExportLogsPartialSuccess, error) {
	if tok == nil {
		return nil, errf(codeUnauthenticated, "missing bearer token")
	}
	now := s.now().UTC()
	n := 0
	srcs := make([]source, len(req.ResourceLogs))
	for i, rl := range req.ResourceLogs {
		src, err := sourceOf(rl.Resource, tok)
		if err != nil {
			return nil, err
		}
		if !tok.Permits(src.project, src.device) {
			return nil, errf(codePermission, "token is not permitted to write this source")
		}
		if !s.logRate.allow(tok.ID, src.key()) {
			return nil, errf(codeExhausted, "log rate limit exceeded")
		}
		srcs[i] = src
		for _, sl := range rl.ScopeLogs {
			n += len(sl.LogRecords)
		}
	}
	recs := make([]*lodestone.LogRecord, 0, n)
	var rj rejections
	for i, rl := range req.ResourceLogs {
		recs = records(rl, srcs[i], now, recs, &rj)
	}
	if err := s.writer.Write(ctx, recs); err != nil {
		return nil, err
	}
	if rj.n == 0 {
		return nil, nil
	}
	s.metrics.rejected.Add(float64(rj.n))
	return &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: rj.n,
		ErrorMessage: fmt.Sprintf("%d log record(s) rejected: %s", rj.n, rj.first)}, nil
}

var grpcCodes = map[codeKind]codes.Code{
	codeInvalid:         codes.InvalidArgument,
	codeUnauthenticated: codes.Unauthenticated,
	codePermission:      codes.PermissionDenied,
	codeExhausted:       codes.ResourceExhausted,
	codePrecondition:    codes.FailedPrecondition,
	codeUnavailable:     codes.Unavailable,
	codeTooLarge:        codes.ResourceExhausted,
}

var httpCodes = map[codeKind]int{
	codeInvalid:         http.StatusBadRequest,
	codeUnauthenticated: http.StatusUnauthorized,
	codePermission:      http.StatusForbidden,
	codeExhausted:       http.StatusTooManyRequests,
	codePrecondition:    http.StatusPreconditionFailed,
	codeUnavailable:     http.StatusServiceUnavailable,
	codeTooLarge:        http.StatusRequestEntityTooLarge,
}

func grpcStatus(e *statusError) error { return status.Error(grpcCodes[e.code], e.message) }

// toGRPC maps any export error to a status; storage trouble is UNAVAILABLE so that exporters retry.
func toGRPC(err error) error {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return grpcStatus(se)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Unavailable, "storage unavailable, retry later")
}

// statusLabel is detritus' status label for a log export outcome.
func statusLabel(e *statusError) string { return grpcLabel(grpcCodes[e.code]) }

func grpcLabel(c codes.Code) string {
	switch c {
	case codes.OK:
		return "200"
	case codes.Unauthenticated:
		return "401"
	case codes.PermissionDenied:
		return "403"
	case codes.ResourceExhausted:
		return "429"
	case codes.InvalidArgument:
		return "400"
	case codes.FailedPrecondition:
		return "412"
	}
	return "500"
}

// httpLogs is OTLP/HTTP POST /v1/logs, protobuf or JSON; the answer uses the request's encoding.
func (s *Server) httpLogs(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	partial, status, msg := s.httpExport(r)
	if status == 0 {
		status = http.StatusOK
	}
	s.countRequest("logs", strconv.Itoa(status), time.Since(start))
	if status != http.StatusOK {
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		s.writeHTTPStatus(w, r, status, msg)
		return
	}
	resp := &collogspb.ExportLogsServiceResponse{PartialSuccess: partial}
	if isJSON(r) {
		b, _ := protojson.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	}
	b, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

func isJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

func (s *Server) httpExport(r *http.Request) (*collogspb.ExportLogsPartialSuccess, int, string) {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-protobuf") && !strings.HasPrefix(ct, "application/json") &&
		!strings.HasPrefix(ct, "application/protobuf") {
		return nil, http.StatusUnsupportedMediaType, "content type must be application/x-protobuf or application/json"
	}
	if serr := s.checkVersion(r.Header.Values("X-Protocol-Version")); serr != nil {
		return nil, httpCodes[serr.code], serr.message
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxMessageBytes)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, "payload exceeds maximum size of " +
				strconv.FormatInt(mbe.Limit, 10) + " bytes"
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, http.StatusRequestTimeout, "the request body did not arrive in time"
		}
		return nil, http.StatusBadRequest, "reading the body: " + err.Error()
	}
	if len(body) > s.cfg.MaxMessageBytes {
		return nil, http.StatusRequestEntityTooLarge, "payload exceeds maximum size of " +
			strconv.Itoa(s.cfg.MaxMessageBytes) + " bytes"
	}
	req := &collogspb.ExportLogsServiceRequest{}
	if strings.HasPrefix(ct, "application/json") {
		body, err = hexIDsToBase64(body)
		if err == nil {
			err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, req)
		}
	} else {
		err = proto.Unmarshal(body, req)
	}
	if err != nil {
		return nil, http.StatusBadRequest, "invalid OTLP logs request: " + err.Error()
	}
	partial, err := s.export(r.Context(), tokenFrom(r.Context()), req)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) {
			return nil, httpCodes[se.code], se.message
		}
		if errors.Is(err, context.Canceled) {
			return nil, 499, "request canceled"
		}
		return nil, http.StatusServiceUnavailable, "storage unavailable, retry later"
	}
	return partial, 0, ""
}

// writeHTTPStatus writes an OTLP/HTTP error: a google.rpc.Status in the request's encoding.
func (s *Server) writeHTTPStatus(w http.ResponseWriter, r *http.Request, code int, msg string) {
	st := &spb.Status{Code: int32(httpToGRPC(code)), Message: msg}
	if isJSON(r) {
		b, _ := protojson.Marshal(st)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(b)
		return
	}
	b, _ := proto.Marshal(st)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(code)
	w.Write(b)
}

func httpToGRPC(code int) codes.Code {
	switch code {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	}
	return codes.InvalidArgument
}

// hexIDsToBase64 rewrites traceId and spanId: OTLP/JSON carries them as hex, protojson expects base64.
func hexIDsToBase64(body []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	changed := false
	for _, rl := range list(doc, "resourceLogs", "resource_logs") {
		for _, sl := range list(rl, "scopeLogs", "scope_logs") {
			for _, lr := range list(sl, "logRecords", "log_records") {
				for _, k := range []string{"traceId", "spanId", "trace_id", "span_id"} {
					if h, ok := lr[k].(string); ok && h != "" {
						raw, err := hex.DecodeString(h)
						if err != nil {
							return nil, errors.New(k + " is not hex")
						}
						lr[k] = base64.StdEncoding.EncodeToString(raw)
						changed = true
					}
				}
			}
		}
	}
	if !changed {
		return body, nil
	}
	return json.Marshal(doc)
}

func list(m map[string]any, keys ...string) []map[string]any {
	var out []map[string]any
	for _, k := range keys {
		if arr, ok := m[k].([]any); ok {
			for _, e := range arr {
				if o, ok := e.(map[string]any); ok {
					out = append(out, o)
				}
			}
		}
	}
	return out
}
