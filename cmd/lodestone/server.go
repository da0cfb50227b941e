package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/console"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/leader"
	"github.com/lodestone-fleet/lodestone/netguard"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// watchStartBound is how long run waits for the alert watcher's first subscription before serving anyway.
const watchStartBound = 15 * time.Second

// server is everything serve runs, built by setup with every listener bound and no goroutine of its own started
// yet; run starts them, and shuts them down in order.
type server struct {
	cfg  Config
	log  *slog.Logger
	spec dbSpec

	db           *openedStore
	authn        *httpapi.Authn
	bus          eventBus
	elector      leader.Elector
	jobs         []leader.Job
	symbolicator *crash.Symbolicator
	writer       *ingest.Writer
	alerts       *alert.Service
	api          *httpapi.Server
	relay        *otlp.Relay // PostgreSQL only: log batches other replicas committed, for this one's tails

	apiSrv   *http.Server
	apiLn    net.Listener
	fuotaSrv *http.Server // nil when FUOTA is off
	fuotaLn  net.Listener
	otlpSrv  *otlp.Server // nil when the OTLP receiver is off
	otlpLns  []net.Listener

	cancelBase context.CancelFunc // ends the main API's request contexts
	ready      chan<- string
}

// undo collects what setup has opened, to close it in reverse if a later step fails.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// setup opens the store and builds every service and listener. On error, whatever it opened is closed again.
func (c *serveCmd) setup(ctx context.Context, cfg Config, log *slog.Logger) (_ *server, err error) {
	var u undo
	defer func() {
		if err != nil {
			u.run()
		}
	}()
	s := &server{cfg: cfg, log: log, ready: c.ready}

	var cipher *chunk.Cipher
	if cfg.ChunkEncryptionKey != "" {
		key, err := chunk.ParseKey(cfg.ChunkEncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("CHUNK_ENCRYPTION_KEY: %w", err)
		}
		if cipher, err = chunk.NewCipher(key); err != nil {
			return nil, fmt.Errorf("CHUNK_ENCRYPTION_KEY: %w", err)
		}
	}
	blobs, err := openBlobs(ctx, cfg.Blobs, cfg.DataDir, cfg.s3Keys(), log)
	if err != nil {
		return nil, err
	}
	if s.spec, err = parseDB(cfg.DB); err != nil {
		return nil, err
	}
	db, err := openStore(ctx, s.spec, cfg.SQLiteSync)
	if err != nil {
		return nil, err
	}
	s.db = db
	u.add(func() { db.Close() })

	admin, generated, err := httpapi.NewBasicAuth(ctx, db, cfg.BasicAuthUser, cfg.BasicAuthPass)
	if err != nil {
		return nil, fmt.Errorf("set up admin account: %w", err)
	}
	if generated != "" {
		fmt.Fprintf(c.stderr, "\n"+
			"  lodestone generated the admin password. It is shown only this once and stored hashed:\n\n"+
			"      user: %s\n      password: %s\n\n"+
			"  Set BASIC_AUTH_PASS to choose your own instead.\n\n", admin.User(), generated)
	}
	if s.authn, err = newAuthn(cfg, admin, db.Store, log); err != nil {
		return nil, err
	}
	u.add(s.authn.Close)
	proxies, err := httpapi.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	apiKey := httpapi.NewAPIKey(cfg.IngestAPIKey)
	if !apiKey.Enabled() {
		log.Warn("INGEST_API_KEY is not set: anyone who can reach this port can post telemetry")
	}

	if s.bus, s.elector, s.jobs, err = replicaServices(ctx, db, cfg, log); err != nil {
		return nil, err
	}
	u.add(func() { s.bus.Close() })

	// Symbolication runs beside ingest, woken after commits that stored faults; regressions go to the bus.
	s.symbolicator = crash.New(crash.Config{}, db, blobs, s.bus, log)
	s.writer = ingest.NewWriter(crash.NotifyingWriter{TelemetryWriter: db, S: s.symbolicator},
		ingest.WriterConfig{Committers: db.committers(), Events: s.bus}, log)
	u.add(s.writer.Close)
	svc := ingest.NewService(s.writer, ingest.Config{Cipher: cipher, AddrWindow: cfg.AttributionWindow, Linker: db}, log)
	otaSvc, campaigns, err := newOTA(cfg, db, s.bus, log)
	if err != nil {
		return nil, err
	}
	s.jobs = append(s.jobs, campaignJob(campaigns, cfg.JobsInterval))
	ops, alerts, purge, opsJobs, err := opsServices(db, cfg, s.bus, log)
	if err != nil {
		return nil, err
	}
	s.alerts = alerts
	s.jobs = append(s.jobs, opsJobs...)
	if s.fuotaSrv, err = fuotaServer(cfg, otaSvc, blobs, log, func(m string) { fmt.Fprint(c.stderr, m) }); err != nil {
		return nil, err
	}
	creds, _ := db.Store.(lodestone.CredentialStore)
	// Live log tails fan out in this process: log batches are too large and too frequent for the shared bus,
	// which stores every event in the database. Replicas on PostgreSQL announce each committed batch there by its
	// ids instead, and each replica's relay reads the records back for its own tails.
	logEvents := otlp.NewFanout()
	var logBatches lodestone.EventPublisher
	if scanner, ok := db.Store.(lodestone.LogScanner); ok && db.pg != nil {
		s.relay = otlp.NewRelay(s.bus, scanner, logEvents, log)
		logBatches = s.bus
	}
	logStore, _ := db.Store.(lodestone.LogStore)
	crashStore, _ := db.Store.(lodestone.CrashUploadStore)
	con, err := newConsole(cfg, db.Store, s.bus, blobs, log, func() *httpapi.Server { return s.api },
		console.UpdatesDeps{OTA: otaSvc, Campaigns: campaigns, Blobs: blobs, ELFs: db, Symbols: s.symbolicator})
	if err != nil {
		return nil, err
	}
	s.api = httpapi.New(httpapi.Config{MaxBodyBytes: cfg.MaxBody, CORSOrigin: cfg.CORSOrigin,
		Limits: httpapi.Limits{RPS: cfg.RateLimitRPS}, TrustedProxies: proxies,
		PublicEvents: cfg.PublicEvents, PublicMetrics: cfg.PublicMetrics,
		Timeouts: httpapi.Timeouts(cfg.Timeouts), Streams: cfg.streamLimits(),
		DDI: httpapi.DDIConfig{Tenant: cfg.DDITenant, GatewayToken: cfg.DDIGatewayToken, Anonymous: cfg.DDIAnonymous,
			PollInterval: time.Duration(cfg.DDIPollSeconds) * time.Second}}, httpapi.Deps{
		Ingest: svc, Devices: db, Telemetry: db, Auth: s.authn, IngestKey: apiKey, Logger: log,
		Blobs: blobs, Credentials: creds,
		Events: s.bus, Leader: s.elector, ELFs: db, Crashes: db, Symbols: s.symbolicator,
		OTA: otaSvc, Campaigns: campaigns,
		Logs: logStore, LogEvents: logEvents, CrashUploads: crashStore, OTLPTokens: apiTokens(db.Store),
		Backup: recordBackups(db.backupService(cfg.DataDir), db.Store), Reports: db.reporter(),
		Counts: ops, Alerts: ops, AlertRules: ops, Retention: purge,
		Doctor:  s.doctorReport(blobs, ops),
		Audit:   auditStore(db.Store),
		Console: con,
		Series:  seriesReader(db.Store),
	})
	if err := mountMCP(s.api, db.Store, log); err != nil {
		return nil, err
	}

	// Every port is bound before anything is served: a port already taken stops the start, not a running server.
	guard := listenGuard{cfg: cfg, exempt: proxies, log: log}
	if s.otlpSrv, s.otlpLns, err = newOTLP(cfg.OTLP, guard, db.Store, blobs, logEvents, logBatches,
		db.committers(), log); err != nil {
		return nil, err
	}
	if s.otlpSrv != nil {
		u.add(func() {
			for _, ln := range s.otlpLns {
				ln.Close()
			}
			s.otlpSrv.Close()
		})
	}
	listen := c.listen
	if listen == nil {
		listen = net.Listen
	}
	ln, err := listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTP, err)
	}
	s.apiLn = guard.wrap(ln, "api", netguard.HTTP503)
	u.add(func() { s.apiLn.Close() })
	if s.fuotaSrv != nil {
		fln, err := net.Listen("tcp", s.fuotaSrv.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s (FUOTA): %w", s.fuotaSrv.Addr, err)
		}
		s.fuotaLn = guard.wrap(fln, "fuota", nil)
		u.add(func() { s.fuotaLn.Close() })
	}
	base, cancelBase := context.WithCancel(context.Background())
	s.apiSrv, s.cancelBase = s.api.HTTPServer(cfg.HTTP, base), cancelBase
	return s, nil
}

// run serves until ctx ends or a part fails on its own (a listener, the OTLP receiver), then shuts down in order:
// readiness answers 503; the listeners stop and in-flight requests finish, within --shutdown-timeout; the leader
// jobs, symbolication and replica counting stop; queued writes commit and their events are published; the alert
// watcher, the log relay and the event bus stop; the store closes. Every goroutine it starts has returned when it
// returns, unless the deadline passed (then the error says what was given up on).
func (s *server) run(ctx context.Context) error {
	failed := make(chan error, 1)
	serving := newCrew("listeners", failed)
	jobs := newCrew("leader jobs, symbolication and replica counting", failed)
	watch := newCrew("alert watcher", failed) // outlives the writer: it queues alerts for what the writer commits while draining
	relay := newCrew("log relay", failed)
	defer func() { // each is stopped on the way; these only release the contexts
		serving.stop()
		jobs.stop()
		watch.stop()
		relay.stop()
		s.cancelBase()
	}()

	if s.relay != nil {
		if err := s.relay.Start(relay.ctx); err != nil {
			s.abort()
			return err
		}
	}
	jobs.Go(func(ctx context.Context) error { return s.elector.Run(ctx, s.jobs...) })
	jobs.Go(func(ctx context.Context) error {
		followReplicas(ctx, s.bus, committerSetters{s.writer, s.otlpSrv}, s.log)
		return nil
	})
	jobs.Go(func(ctx context.Context) error {
		s.symbolicator.Run(ctx)
		return nil
	})
	watch.Go(func(ctx context.Context) error {
		if err := s.alerts.Watch(ctx); err != nil {
			s.log.Error("alerts stopped", "err", err) // alerts are not worth stopping the server for
		}
		return nil
	})
	// The watcher subscribes before the listeners take traffic, or a fault sent in the first moments would not
	// be alerted; a database too slow to answer delays the start by at most the bound.
	select {
	case <-s.alerts.Watching():
	case <-time.After(watchStartBound):
		s.log.Warn("serving before the alert watcher subscribed: events until then are not alerted",
			"waited", watchStartBound)
	case <-ctx.Done():
	}
	serving.Go(func(context.Context) error {
		if err := s.apiSrv.Serve(s.apiLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	s.log.Info("web console: open it in a browser and sign in", "url", consoleURL(s.apiLn.Addr()))
	if s.fuotaSrv != nil {
		serving.Go(func(context.Context) error {
			if err := s.fuotaSrv.ServeTLS(s.fuotaLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("FUOTA server: %w", err)
			}
			return nil
		})
		s.log.Info("ESP32 FUOTA listener serving", "addr", s.fuotaLn.Addr().String())
	}
	if s.otlpSrv != nil {
		// Serve stops gracefully when the crew's context ends: its listeners, in-flight requests, janitor and
		// log writer.
		serving.Go(func(ctx context.Context) error { return s.otlpSrv.Serve(ctx, s.otlpLns...) })
	}
	s.log.Info("lodestone serving", "addr", shownAddr(s.cfg.HTTP, s.apiLn.Addr()), "db", s.spec.String(),
		"version", version)
	if s.ready != nil {
		s.ready <- s.apiLn.Addr().String()
	}

	var cause error
	select {
	case <-ctx.Done():
	case cause = <-failed:
		s.log.Error("stopping: a listener failed", "err", cause)
	}
	return errors.Join(cause, s.shutdown(serving, jobs, watch, relay))
}

// shutdown stops every crew and service in order; see run.
func (s *server) shutdown(serving, jobs, watch, relay *crew) error {
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	st, cancel := newStopping(s.cfg.ShutdownTimeout, s.log)
	defer cancel()

	s.api.SetDraining()
	// The jobs serve no client: stopping them now hands the lead to another replica while this one drains.
	jobs.stop()

	serving.stop() // the OTLP receiver shuts down on its own, with the same timeout
	var halting sync.WaitGroup
	for _, srv := range []*http.Server{s.apiSrv, s.fuotaSrv} {
		if srv == nil {
			continue
		}
		halting.Go(func() {
			if err := srv.Shutdown(st.ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("in-flight requests did not finish in time", "addr", srv.Addr, "err", err)
				srv.Close() // what is left loses its connection, so that its handler returns
			}
		})
	}
	halting.Wait() // Shutdown keeps to st's deadline itself
	s.cancelBase()
	st.wait("listeners", serving.done())
	st.wait(jobs.name, jobs.done())

	st.do("the ingest writer (queued telemetry)", s.writer.Close) // commits what is queued, publishes its events
	watch.stop()
	st.wait(watch.name, watch.done())
	relay.stop()
	if s.relay != nil {
		st.wait(relay.name, s.relay.Done())
	}
	st.do("the event bus", func() {
		if b, ok := s.bus.(interface{ Shutdown(context.Context) error }); ok {
			b.Shutdown(st.ctx) // drops what it cannot write by the deadline
			return
		}
		s.bus.Close()
	})
	st.do("token use records", s.authn.Close)

	var closeErr error
	if gaveUp := st.err(); gaveUp != nil {
		// Closing the store would wait for what is still using it. Everything acknowledged is committed already.
		s.log.Error("exiting without closing the database", "err", gaveUp)
		return gaveUp
	}
	st.do("the database", func() { closeErr = s.db.Close() })
	if err := st.err(); err != nil {
		return err
	}
	if closeErr != nil {
		return fmt.Errorf("close database: %w", closeErr)
	}
	s.log.Info("stopped")
	return nil
}

// abort closes what setup opened when run cannot start.
func (s *server) abort() {
	s.apiLn.Close()
	if s.fuotaLn != nil {
		s.fuotaLn.Close()
	}
	if s.otlpSrv != nil {
		for _, ln := range s.otlpLns {
			ln.Close()
		}
		s.otlpSrv.Close()
	}
	s.writer.Close()
	s.bus.Close()
	s.authn.Close()
	s.db.Close()
}

// shownAddr is the address a listener is bound to, written as configured when that was a wildcard: Go binds
// 0.0.0.0 to every IPv4 and IPv6 address and reports [::], which would not match the --http people gave.
func shownAddr(configured string, bound net.Addr) string {
	tcp, ok := bound.(*net.TCPAddr)
	host, _, err := net.SplitHostPort(configured)
	if !ok || err != nil || !tcp.IP.IsUnspecified() {
		return bound.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// seriesReader is the store's metric series for the charts; openedStore wraps the store in an interface, which
// hides it from httpapi's own type assertion.
func seriesReader(st lodestone.Store) lodestone.SeriesReader {
	r, _ := st.(lodestone.SeriesReader)
	return r
}
