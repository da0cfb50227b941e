// Package httpapi serves lodestone over HTTP: ferrite-compatible ingest and read routes, with one error writer,
// authentication, body limits and timeouts.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/doctor"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
)

// Config holds the server's tunables.
type Config struct {
	MaxBodyBytes int64         // largest ingest body; default 2 MiB like ferrite
	CORSOrigin   string        // allowed browser origin; empty sends no CORS headers
	KeepAlive    time.Duration // idle time before an event stream sends a keep-alive comment; default 15 s

	Limits         Limits         // rate limits (ratelimit.go)
	TrustedProxies []netip.Prefix // peers whose X-Forwarded-For is believed (TRUSTED_PROXIES)
	Timeouts       Timeouts       // zero fields take the defaults (timeouts.go)
	PublicEvents   bool           // GET /events/stream needs no credentials (PUBLIC_EVENTS)
	PublicMetrics  bool           // GET /metrics/prometheus needs no credentials (PUBLIC_METRICS)
	Streams        StreamLimits   // caps on event and log streams (streams.go); zero fields take the defaults

	MaxFirmwareBytes int64 // largest firmware upload; default DefaultMaxFirmware

	DDI DDIConfig // the hawkBit DDI API (ddi.go)

	// ReadyCacheTTL is how long one storage check answers /readyz; default 2 s, negative checks every time.
	ReadyCacheTTL time.Duration
}

// Deps are the services the handlers call.
type Deps struct {
	Ingest    *ingest.Service
	Devices   lodestone.DeviceService
	Telemetry lodestone.TelemetryService
	Auth      Authenticator // users and tokens; nil refuses every non-public, non-device route
	IngestKey *APIKey
	Logger    *slog.Logger
	Blobs     lodestone.BlobStore // firmware images, ELF files, crash dumps and attachments
	Events    lodestone.EventBus  // live events for GET /events/stream; nil answers 503
	ELFs      lodestone.ELFService
	Crashes   lodestone.CrashService
	Symbols   Symbolicator // the symbolication workers; nil refuses ELF uploads
	// DB is pinged by /readyz, which answers 503 while it fails; nil: Devices, if it is a Pinger. The blob
	// store is checked too (its Ping, or a Stat that must answer "not found").
	DB Pinger
	// Leader says whether this replica runs the periodic jobs; /readyz reports it. Nil: a lone process.
	Leader interface{ IsLeader() bool }
	// Credentials keeps managed users, API tokens and device keys; nil leaves their routes answering 503.
	Credentials lodestone.CredentialStore
	OTA         *ota.Service // firmware updates; nil leaves the /ota routes out
	Campaigns   *ota.Campaigns

	Logs         lodestone.LogStore         // GET /logs; nil answers 503
	LogEvents    lodestone.EventBus         // GET /logs/stream subscribes here for EventLogs events
	CrashUploads lodestone.CrashUploadStore // GET /crash-uploads
	OTLPTokens   lodestone.OTLPTokenStore   // /admin/otlp-tokens: detritus tokens created through the API
	Backup       lodestone.BackupService    // GET /admin/backup; nil answers 503
	Reports      lodestone.DeviceReporter   // GET /report/devices; nil answers 503
	// Operations (ops.go, prometheus.go): row counts for Prometheus gauges (nil: none), the alert delivery log
	// and the retention purge (nil: their routes answer 503).
	Counts lodestone.FleetCounter
	Alerts lodestone.AlertStore
	// AlertRules keeps alert rules and alert states (alertrules.go); nil answers 503.
	AlertRules lodestone.AlertRuleStore
	Retention  Retention
	// Doctor runs the health checks for GET /admin/doctor (doctor.go); nil answers 503.
	Doctor func(ctx context.Context) doctor.Report

	// Registry provisions devices and Groups keeps device groups; when nil they are taken from Devices if it
	// implements them (a lodestone.Store does), else their routes answer 503.
	Registry lodestone.DeviceRegistry
	Groups   lodestone.GroupService
	// Series computes metric series for the charts (series.go); nil: taken from Telemetry or Devices when they
	// implement it (a lodestone.Store does), else GET /series answers 503.
	Series lodestone.SeriesReader
	// Stability and Timeline serve GET /stability and GET /devices/{id}/timeline (stability.go); nil: taken from
	// Telemetry or Devices when they implement them (a lodestone.Store does), else the routes answer 503.
	Stability lodestone.StabilityReader
	Timeline  lodestone.TimelineReader
	// Audit is the audit log behind GET /admin/audit, where actions that change no row (a backup download, a
	// retention run) are recorded; nil: taken from Devices if it implements it, else the route answers 503.
	// Changes to rows are recorded by the store itself.
	Audit lodestone.AuditStore

	// Console is the web console, served under /ui/ (it checks its own sessions); nil leaves it out, and a
	// browser opening / then gets the API's 404.
	Console http.Handler
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	mux      *http.ServeMux
	ddiMux   *http.ServeMux // /{tenant}/controller/v1/...: kept apart, as its leading wildcard overlaps other trees
	ddi      ddiState       // ddi_auth.go
	table    []Route
	draining atomic.Bool
	bufs     sync.Pool
	stopping chan struct{} // closed by SetDraining: event streams end
	stopOnce sync.Once

	ingestIPs, ingestDevices, authFailures *buckets
	authFailed                             atomic.Uint64
	authState                              authState  // authgate.go
	backupRunning                          sync.Mutex // one backup at a time: each needs the database's size on disk

	prom      *promMetrics // prometheus.go
	readiness readiness    // ready.go
	streams   streamCount  // open event and log streams (streams.go)
	mcp       http.Handler // POST /mcp (mcp.go); nil answers 503
}

// DefaultMaxBody is ferrite-server's effective body limit.
const DefaultMaxBody = 2 << 20

// New builds the server and its route table.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBody
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.IngestKey == nil {
		deps.IngestKey = NewAPIKey("")
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if deps.Registry == nil {
		deps.Registry, _ = deps.Devices.(lodestone.DeviceRegistry)
	}
	if deps.Groups == nil {
		deps.Groups, _ = deps.Devices.(lodestone.GroupService)
	}
	if deps.Stability == nil {
		if deps.Stability, _ = deps.Telemetry.(lodestone.StabilityReader); deps.Stability == nil {
			deps.Stability, _ = deps.Devices.(lodestone.StabilityReader)
		}
	}
	if deps.Timeline == nil {
		if deps.Timeline, _ = deps.Telemetry.(lodestone.TimelineReader); deps.Timeline == nil {
			deps.Timeline, _ = deps.Devices.(lodestone.TimelineReader)
		}
	}
	if deps.Series == nil {
		if deps.Series, _ = deps.Telemetry.(lodestone.SeriesReader); deps.Series == nil {
			deps.Series, _ = deps.Devices.(lodestone.SeriesReader)
		}
	}
	if deps.Audit == nil {
		deps.Audit, _ = deps.Devices.(lodestone.AuditStore)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, mux: http.NewServeMux(), ddiMux: http.NewServeMux(),
		stopping: make(chan struct{})}
	s.initDDI()
	s.initLimits()
	s.initMetrics()
	s.initReadiness()
	s.routes()
	return s
}

// handlerFunc is a handler that returns its error for the one error writer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap runs h behind the checks every route shares: path values, query parameters and X- headers are text, so a
// request where they hold NUL or invalid UTF-8 is refused here, once, on every backend.
func (s *Server) wrap(h handlerFunc) http.HandlerFunc { return s.wrapAs(h, nil) }

// wrapAs is wrap for a route that answers in its own shape: reject, when set, writes what the shared checks
// refuse (ingest keeps ferrite's {"ok":false,...} answers, which gateways parse).
func (s *Server) wrapAs(h handlerFunc, reject func(http.ResponseWriter, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := checkRequestText(r)
		if err != nil && reject != nil {
			reject(w, err)
			return
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			Error(w, r, s.logFor(r), err)
		}
	}
}

// routes is the whole route table. Feature files add theirs through their own routesXxx method called here.
func (s *Server) routes() {
	s.handle("GET /health", AccessPublic, s.health)
	s.handle("GET /readyz", AccessPublic, s.ready)
	s.handle("GET /auth/mode", AccessPublic, s.authMode)

	s.handleRaw("POST /ingest/chunks", AccessDevice, s.ingestChunks, s.ingestRejected)

	s.handle("GET /devices", AccessViewer, s.listDevices)
	s.handle("GET /devices/{id}", AccessViewer, s.getDevice)
	s.handle("GET /devices/{id}/faults", AccessViewer, s.listFaults)
	s.handle("GET /devices/{id}/metrics", AccessViewer, s.listMetrics)
	s.handle("GET /devices/{id}/reboots", AccessViewer, s.listReboots)
	s.handle("GET /devices/{id}/heartbeats", AccessViewer, s.listHeartbeats)
	s.handle("GET /devices/{id}/traces", AccessViewer, s.listTraces)
	s.handle("GET /faults", AccessViewer, s.listFaults)
	s.handle("GET /metrics", AccessViewer, s.listMetrics)
	s.handle("GET /reboots", AccessViewer, s.listReboots)

	s.routesEvents()
	s.routesCrashes()
	s.routesAuth()
	s.routesOTA()
	s.routesLogs()
	s.routesOTLPTokens()
	s.routesBackup()
	s.routesOps()
	s.routesFleet()
	s.routesDoctor()
	s.routesSeries()
	s.routesStability()
	s.routesMCP()
	s.routesAudit()
	s.routesDDI()
	s.routesOpenAPI() // openapi.go
	if s.deps.Console != nil {
		s.handle("/ui/", AccessSession, func(w http.ResponseWriter, r *http.Request) error {
			s.deps.Console.ServeHTTP(w, r)
			return nil
		})
	}
}

// browserAtRoot reports whether r is a browser (one that accepts HTML) opening /, which goes to the console; API
// clients keep the JSON 404 they always got there.
func (s *Server) browserAtRoot(r *http.Request) bool {
	return s.deps.Console != nil && r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// unmatched answers requests no route takes. The mux decides between 404 and 405 (and sets Allow); the body is
// rewritten as JSON like every other error.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	code := lodestone.ENOTFOUND
	msg := fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)
	if probe.status == http.StatusMethodNotAllowed {
		code, msg = "method_not_allowed", fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)
	}
	writeJSON(w, probe.status, errorBody{Error: msg, Code: code})
}

// statusProbe records what the mux's own not-found or method-not-allowed handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.status = code }

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	mux := s.mux
	if isDDIPath(r.URL.Path) {
		mux = s.ddiMux
	}
	h, pattern := mux.Handler(r)
	if pattern == "" && s.browserAtRoot(r) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
		return
	}
	if pattern == "" {
		s.unmatched(w, r, h)
		return
	}
	mux.ServeHTTP(w, r)
}

// Handler returns the API with its middleware: request ids, panic recovery, security headers and CORS.
func (s *Server) Handler() http.Handler {
	h := s.requests(s.recoverer(s.headers(http.HandlerFunc(s.route))))
	if observeResponses != nil {
		return observeResponses(s, h) // the tests check every response against the API description
	}
	return h
}

// HTTPServer returns an http.Server with timeouts on every phase and per-connection ingest attribution state.
func (s *Server) HTTPServer(addr string, base context.Context) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.Timeouts.readHeader(),
		ReadTimeout:       s.cfg.Timeouts.read(),
		WriteTimeout:      s.cfg.Timeouts.write(),
		IdleTimeout:       s.cfg.Timeouts.idle(),
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, ingest.NewConn())
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

type connKey struct{}

// SetDraining makes /readyz answer 503 so load balancers stop sending traffic before shutdown, and ends event
// streams, which would otherwise hold the graceful shutdown until its deadline.
func (s *Server) SetDraining() {
	s.draining.Store(true)
	s.stopOnce.Do(func() { close(s.stopping) })
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v,
					"stack", string(debug.Stack()))
				Error(w, r, s.logFor(r), lodestone.Errorf(lodestone.EINTERNAL, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// The API serves data, never pages: nothing in a response may run or be framed.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if o := s.cfg.CORSOrigin; o != "" {
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, X-RateLimit-Limit, "+
				"X-RateLimit-Remaining, X-RateLimit-Reset")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers",
					"authorization, content-type, x-device-id, x-api-key, x-firmware-version, x-request-id")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	if s.draining.Load() {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "shutting down")
	}
	if reason := s.readyReason(r.Context()); reason != "" {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "%s", reason)
	}
	body := map[string]any{"status": "ready"}
	if s.deps.Leader != nil {
		body["leader"] = s.deps.Leader.IsLeader()
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) authMode(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.authModeBody())
	return nil
}
