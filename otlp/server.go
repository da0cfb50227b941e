// Package otlp receives logs and crash reports: OTLP logs over gRPC and OTLP/HTTP (protobuf and JSON), and
// detritus' multipart crash uploads, on listeners of their own. One socket serves gRPC, HTTP/1.1 and h2c, as
// detritusd's does, so detritus clients and plain OpenTelemetry exporters work unchanged. Records are stored
// (committed) before an export is acknowledged. See README.md for the contract.
package otlp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // OpenTelemetry exporters send gzip by default
	"google.golang.org/grpc/keepalive"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/netguard"
)

// Defaults, detritus' where it has one.
const (
	DefaultMaxMessageBytes = 4 << 20   // gRPC's default receive limit; also OTLP/HTTP bodies
	DefaultMaxBodyBytes    = 150 << 20 // every request, after decompression
	DefaultMaxDumpBytes    = 100 << 20 // one dump or attachment part
	DefaultMaxAttachments  = 64
	maxMetadataBytes       = 64 << 10
)

// Config tunes the receiver.
type Config struct {
	Tokens          *TokenFile // required: every ingest request needs a bearer token from it
	MaxMessageBytes int        // largest gRPC message and OTLP/HTTP body
	MaxBodyBytes    int64      // largest request body, counted after decompression
	MaxDumpBytes    int64      // largest dump or attachment part
	MaxAttachments  int
	// RequireProtocolVersion makes a missing x-protocol-version a FAILED_PRECONDITION, as detritusd does. Off by
	// default so that plain OpenTelemetry exporters, which never send it, are accepted; a present but wrong
	// version is always refused.
	RequireProtocolVersion bool
	Writer                 WriterConfig
	Retention              RetentionConfig
	// Timeouts bound slow and idle clients on every listener, HTTP/1.1 and HTTP/2 (gRPC) alike; zero fields take
	// netguard's defaults, the main API's. Connection caps are the listeners' (netguard.Listen).
	Timeouts netguard.Timeouts
	// ShutdownTimeout bounds how long Serve waits for in-flight requests once its context ends; default 30 s.
	ShutdownTimeout time.Duration
	// SpoolDir holds crash-upload parts (past the first 256 KiB of a request, kept in memory) while they arrive,
	// before they are stored; empty: the system's temporary directory. Files are removed when the request ends.
	SpoolDir string
}

// Deps are the services the receiver stores into.
type Deps struct {
	Logs    lodestone.LogStore
	Crashes lodestone.CrashUploadStore
	Blobs   lodestone.BlobStore
	Events  lodestone.EventPublisher // committed log records are published here; nil publishes nothing
	// Batches is the event bus replicas share. When set, each committed batch is announced there as one
	// EventLogBatch naming its ids instead of going to Events; a Relay on every replica reads the records back
	// for its live tails, so a tail sees what any replica stored.
	Batches lodestone.EventPublisher
	Logger  *slog.Logger
	// Tokens keeps tokens created through lodestone's API (ldt_…), accepted beside the token file's; nil: file only.
	Tokens lodestone.OTLPTokenStore
}

// Server is the receiver. Build it with New, run it with Serve.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	verifier *Verifier
	logRate  *limiter
	crashRL  *limiter
	writer   *Writer
	metrics  *metrics
	grpc     *grpc.Server
	mux      *http.ServeMux
	gc       sync.RWMutex // uploads hold it shared from blob Put to index commit; the blob sweep exclusively
	orphans  orphanSet
	now      func() time.Time
	closeW   sync.Once
	// onPartSpooling, set by tests, is called as each crash-upload part starts to arrive.
	onPartSpooling func(name string)
}

// New checks cfg and builds the server; its log writer starts at once.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Tokens == nil || len(cfg.Tokens.Tokens) == 0 {
		return nil, errors.New("otlp: a token file with at least one token is required")
	}
	if deps.Logs == nil || deps.Crashes == nil || deps.Blobs == nil {
		return nil, errors.New("otlp: log store, crash store and blob store are required")
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDumpBytes <= 0 {
		cfg.MaxDumpBytes = DefaultMaxDumpBytes
	}
	if cfg.MaxAttachments <= 0 {
		cfg.MaxAttachments = DefaultMaxAttachments
	}
	cfg.Retention.setDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, verifier: NewVerifier(cfg.Tokens.Tokens),
		metrics: newMetrics(), mux: http.NewServeMux(), now: time.Now}
	rl := cfg.Tokens.RateLimit
	s.verifier.SetLogger(deps.Logger)
	if deps.Tokens != nil {
		s.verifier.UseStore(deps.Tokens)
	}
	s.logRate = newLimiter(rl.LogsPerMinute, rl.LogsBurst, nil)
	s.crashRL = newLimiter(rl.CrashesPerMinute, rl.CrashesBurst, nil)
	s.writer = NewWriter(deps.Logs, deps.Events, cfg.Writer, deps.Logger)
	s.writer.stats = s.metrics
	s.writer.batches = deps.Batches
	// These bound grpc-go's own transport (see connSplitter) as netguard bounds net/http's HTTP/2.
	t := cfg.Timeouts.WithDefaults()
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(cfg.MaxMessageBytes), grpc.UnaryInterceptor(s.authInterceptor),
		grpc.MaxConcurrentStreams(100), grpc.ConnectionTimeout(t.ReadHeader),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: t.Idle, Time: t.Idle, Timeout: t.Write}))
	collogspb.RegisterLogsServiceServer(s.grpc, &logsService{s: s})
	s.mux.HandleFunc("POST /v1/logs", s.httpLogs)
	s.mux.HandleFunc("POST /v1/crashes", s.crashUpload)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.mux.HandleFunc("GET /metrics", s.metrics.serveHTTP)
	return s, nil
}

// Handler serves gRPC (HTTP/2 with a gRPC content type) and everything else on one handler. Mount it on an
// http.Server that speaks h2c (see Serve) for gRPC to work.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in otlp handler", "path", r.URL.Path, "panic", v)
				writeCrashError(w, http.StatusInternalServerError, "internal server error")
			}
		}()
		// detritus 0.2: every response carries x-request-id, the client's or a fresh UUID.
		w.Header().Set("X-Request-Id", requestID(r.Header.Get("X-Request-Id")))
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
			s.grpc.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz", "/metrics":
			s.mux.ServeHTTP(w, r)
			return
		}
		// detritus checks the body's encoding and size before the token, and the token before routing.
		body, status, msg := s.decodedBody(w, r)
		if status != 0 {
			if status == http.StatusUnsupportedMediaType {
				w.Header().Set("Accept-Encoding", "gzip, zstd, identity")
			}
			writeCrashError(w, status, msg)
			return
		}
		r.Body = body
		tok, serr := s.bearer(r.Context(), r.RemoteAddr, endpointOf(r.URL.Path), r.Header.Get("Authorization"))
		if serr != nil {
			code := httpCodes[serr.code]
			s.countRequest(endpointOf(r.URL.Path), strconv.Itoa(code), 0)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", "Bearer")
			} else {
				w.Header().Set("Retry-After", "1")
			}
			if r.URL.Path == "/v1/logs" {
				s.writeHTTPStatus(w, r, code, serr.message)
			} else {
				writeCrashError(w, code, serr.message)
			}
			return
		}
		s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

func endpointOf(path string) string {
	switch path {
	case "/v1/crashes":
		return "crashes"
	case "/v1/logs", "/opentelemetry.proto.collector.logs.v1.LogsService/Export":
		return "logs"
	}
	return "other"
}

type tokenKey struct{}

func tokenFrom(ctx context.Context) *Token {
	t, _ := ctx.Value(tokenKey{}).(*Token)
	return t
}

// bearer checks an Authorization value with detritus' messages; a verifier too busy to check it now is
// UNAVAILABLE, which exporters retry.
func (s *Server) bearer(ctx context.Context, remote, endpoint, h string) (*Token, *statusError) {
	switch {
	case h == "":
		return nil, errf(codeUnauthenticated, "missing bearer token")
	case !isVisible(h):
		return nil, errf(codeUnauthenticated, "authorization header is not UTF-8")
	case !strings.HasPrefix(h, "Bearer "):
		return nil, errf(codeUnauthenticated, "authorization header must use Bearer")
	}
	presented := strings.TrimPrefix(h, "Bearer ")
	tok, err := s.verifier.Check(ctx, presented)
	if err != nil {
		return nil, errf(codeUnavailable, "too many bearer tokens are being verified; retry shortly")
	}
	if tok == nil {
		s.verifier.Refused(remote, endpoint, presented, "invalid bearer token")
		return nil, errf(codeUnauthenticated, "invalid bearer token")
	}
	return tok, nil
}

func isVisible(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Server) countRequest(endpoint, status string, took time.Duration) {
	if endpoint != "logs" && endpoint != "crashes" {
		return
	}
	s.metrics.requests.WithLabelValues(endpoint, status).Inc()
	if took > 0 {
		s.metrics.duration.WithLabelValues(endpoint).Observe(took.Seconds())
	}
}

// Serve serves the receiver on every listener until ctx ends, then stops gracefully: listeners close, in-flight
// requests finish (for up to 30 s), queued log records commit. The listeners are closed when it returns.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	if len(lns) == 0 {
		return errors.New("otlp: no listener")
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:        s.Handler(),
		Protocols:      &protos,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return base },
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.cfg.Timeouts.Apply(srv)
	t := s.cfg.Timeouts.WithDefaults()
	errc := make(chan error, len(lns))
	var grpcServing sync.WaitGroup
	for _, ln := range lns {
		sp := newConnSplitter(ln, t.ReadHeader, t.Idle)
		go sp.run()
		go func() { errc <- srv.Serve(sp.http) }()
		grpcServing.Go(func() { s.grpc.Serve(sp.grpc) })
	}
	jobs, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	janitorDone := make(chan struct{})
	go func() {
		defer close(janitorDone)
		s.janitor(jobs)
	}()

	var err error
	serving := len(lns)
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("otlp: serve: %w", err)
		serving--
	}
	stopJobs()
	for _, ln := range lns {
		ln.Close()
	}
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	grpcStopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(grpcStopped)
	}()
	if e := srv.Shutdown(sctx); e != nil && !errors.Is(e, http.ErrServerClosed) {
		s.log.Warn("otlp: in-flight requests did not finish in time", "err", e)
		srv.Close() // what is left loses its connection, so that its handler returns
	}
	select {
	case <-grpcStopped:
	case <-sctx.Done():
		s.log.Warn("otlp: in-flight gRPC exports did not finish in time")
		s.grpc.Stop()
	}
	grpcServing.Wait()
	cancelBase()
	// The janitor may wait for the upload lock, which an upload holds until its handler returns.
	<-janitorDone
	for range serving {
		<-errc
	}
	s.Close()
	return err
}

// SetCommitters bounds the log writer's transactions in flight (see Writer.SetCommitters). On a nil Server (the
// receiver is off) it does nothing, so that callers can hand it over without checking.
func (s *Server) SetCommitters(n int) {
	if s != nil {
		s.writer.SetCommitters(n)
	}
}

// Close commits every queued log record and stops the writer; Serve calls it on the way out.
func (s *Server) Close() { s.closeW.Do(s.writer.Close) }

// requestID keeps a client's request id when it is a short visible ASCII string, else makes a UUID v4.
func requestID(v string) string {
	if v != "" && len(v) <= 128 && isVisible(v) && utf8.ValidString(v) && !strings.ContainsAny(v, "\r\n") {
		return v
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
