package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/netguard"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// serveCmd runs the server until its context ends, then shuts down gracefully: readiness goes 503, the listener
// closes, in-flight requests finish, queued writes commit, the database closes.
type serveCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// ready, if set, receives the bound address once the server accepts connections (tests).
	ready chan<- string
	// dir is where the .env search starts; empty means the working directory.
	dir string
}

func (c *serveCmd) flags(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cfg.registerFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(c.stderr, `Usage: lodestone [serve] [flags]

Runs the server. With no flags it serves 0.0.0.0:4000 and keeps its data in ./lodestone-data
(embedded SQLite). Devices post ferrite chunks to POST /ingest/chunks; the read API
(/devices, /faults, /metrics, ...) needs the admin's Basic credentials.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(c.stderr, "\nEnvironment (also read from a .env file in this directory or a parent):\n")
		for _, e := range envVars {
			if e.help != "" {
				fmt.Fprintf(c.stderr, "  %-22s %s\n", e.name, e.help)
			}
		}
	}
	return fs
}

// config builds the configuration from defaults, .env, the environment and args.
func (c *serveCmd) config(args []string) (Config, error) {
	cfg := defaultConfig()
	wd := c.dir
	if wd == "" {
		wd, _ = os.Getwd()
	}
	if err := loadEnv(&cfg, c.getenv, wd); err != nil {
		return cfg, err
	}
	fs := c.flags(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	// ferrite order: options, then the subcommand word.
	if rest := fs.Args(); len(rest) > 0 {
		if rest[0] != "serve" {
			return cfg, fmt.Errorf("unknown command %q (try 'lodestone help')", rest[0])
		}
		if err := fs.Parse(rest[1:]); err != nil {
			return cfg, err
		}
		if len(fs.Args()) > 0 {
			return cfg, fmt.Errorf("unexpected argument %q", fs.Args()[0])
		}
	}
	return cfg, cfg.resolve()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func (c *serveCmd) Run(ctx context.Context, args []string) error {
	cfg, err := c.config(args)
	if err != nil {
		return err
	}
	log, err := newLogger(c.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", cfg.DataDir, err)
	}
	c.warnInactive(cfg, log)

	var cipher *chunk.Cipher
	if cfg.ChunkEncryptionKey != "" {
		key, err := chunk.ParseKey(cfg.ChunkEncryptionKey)
		if err != nil {
			return fmt.Errorf("CHUNK_ENCRYPTION_KEY: %w", err)
		}
		if cipher, err = chunk.NewCipher(key); err != nil {
			return fmt.Errorf("CHUNK_ENCRYPTION_KEY: %w", err)
		}
	}

	blobs, err := openBlobs(ctx, cfg.Blobs, cfg.DataDir, cfg.s3Keys(), log)
	if err != nil {
		return err
	}

	spec, err := parseDB(cfg.DB)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, spec, cfg.SQLiteSync)
	if err != nil {
		return err
	}
	defer db.Close()

	admin, generated, err := httpapi.NewBasicAuth(ctx, db, cfg.BasicAuthUser, cfg.BasicAuthPass)
	if err != nil {
		return fmt.Errorf("set up admin account: %w", err)
	}
	if generated != "" {
		fmt.Fprintf(c.stderr, "\n"+
			"  lodestone generated the admin password. It is shown only this once and stored hashed:\n\n"+
			"      user: %s\n      password: %s\n\n"+
			"  Set BASIC_AUTH_PASS to choose your own instead.\n\n", admin.User(), generated)
	}
	authn, err := newAuthn(cfg, admin, db.Store, log)
	if err != nil {
		return err
	}
	defer authn.Close()
	proxies, err := httpapi.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	apiKey := httpapi.NewAPIKey(cfg.IngestAPIKey)
	if !apiKey.Enabled() {
		log.Warn("INGEST_API_KEY is not set: anyone who can reach this port can post telemetry")
	}

	bus, elector, jobList, err := replicaServices(ctx, db, cfg, log)
	if err != nil {
		return err
	}
	defer bus.Close()

	// Symbolication runs beside ingest, woken after commits that stored faults; regressions go to the bus.
	symbolicator := crash.New(crash.Config{}, db, blobs, bus, log)
	writer := ingest.NewWriter(crash.NotifyingWriter{TelemetryWriter: db, S: symbolicator},
		ingest.WriterConfig{Committers: db.committers(), Events: bus}, log)
	go followReplicas(ctx, bus, writer, log)
	svc := ingest.NewService(writer, ingest.Config{Cipher: cipher, AddrWindow: cfg.AttributionWindow}, log)
	otaSvc, campaigns, err := newOTA(cfg, db, bus, log)
	if err != nil {
		writer.Close()
		return err
	}
	jobList = append(jobList, campaignJob(campaigns))
	ops, alerts, purge, opsJobs, err := opsServices(db, cfg, bus, log)
	if err != nil {
		writer.Close()
		return err
	}
	jobList = append(jobList, opsJobs...)
	fuotaSrv, err := fuotaServer(cfg, otaSvc, blobs, log, func(s string) { fmt.Fprint(c.stderr, s) })
	if err != nil {
		writer.Close()
		return err
	}
	creds, _ := db.Store.(lodestone.CredentialStore)
	// Live log tails fan out in this process: log batches are too large and too frequent for the shared bus,
	// which stores every event in the database. Replicas on PostgreSQL announce each committed batch there by its
	// ids instead, and each replica's relay reads the records back for its own tails.
	logEvents := otlp.NewFanout()
	var logBatches lodestone.EventPublisher
	relayCtx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	if scanner, ok := db.Store.(lodestone.LogScanner); ok && db.pg != nil {
		if err := otlp.NewRelay(bus, scanner, logEvents, log).Start(relayCtx); err != nil {
			writer.Close()
			return err
		}
		logBatches = bus
	}
	logStore, _ := db.Store.(lodestone.LogStore)
	crashStore, _ := db.Store.(lodestone.CrashUploadStore)
	api := httpapi.New(httpapi.Config{MaxBodyBytes: cfg.MaxBody, CORSOrigin: cfg.CORSOrigin,
		Limits: httpapi.Limits{RPS: cfg.RateLimitRPS}, TrustedProxies: proxies,
		PublicEvents: cfg.PublicEvents, PublicMetrics: cfg.PublicMetrics,
		Timeouts: httpapi.Timeouts(cfg.Timeouts)}, httpapi.Deps{
		Ingest: svc, Devices: db, Telemetry: db, Auth: authn, IngestKey: apiKey, Logger: log,
		Blobs: blobs, Credentials: creds,
		Events: bus, Leader: elector, ELFs: db, Crashes: db, Symbols: symbolicator,
		OTA: otaSvc, Campaigns: campaigns,
		Logs: logStore, LogEvents: logEvents, CrashUploads: crashStore, OTLPTokens: apiTokens(db.Store),
		Backup: db.backupService(cfg.DataDir), Reports: db.reporter(),
		Counts: ops, Alerts: ops, Retention: purge,
	})
	guard := listenGuard{cfg: cfg, exempt: proxies, log: log}
	otlpCtx, stopOTLP := context.WithCancel(context.Background())
	defer stopOTLP()
	waitOTLP, otlpFailed, err := startOTLP(otlpCtx, cfg.OTLP, guard, db.Store, blobs, logEvents, logBatches,
		db.committers(), log)
	if err != nil {
		writer.Close()
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		writer.Close()
		stopOTLP()
		waitOTLP()
		return fmt.Errorf("listen on %s: %w", cfg.HTTP, err)
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := api.HTTPServer(cfg.HTTP, base)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(guard.wrap(ln, "api", netguard.HTTP503)) }()
	if fuotaSrv != nil {
		fln, err := net.Listen("tcp", fuotaSrv.Addr)
		if err != nil {
			srv.Close()
			writer.Close()
			return fmt.Errorf("listen on %s (FUOTA): %w", fuotaSrv.Addr, err)
		}
		defer fuotaSrv.Close()
		go func() { serveErr <- fuotaSrv.ServeTLS(guard.wrap(fln, "fuota", nil), "", "") }()
		log.Info("ESP32 FUOTA listener serving", "addr", fln.Addr().String())
	}
	log.Info("lodestone serving", "addr", ln.Addr().String(), "db", spec.String(), "version", version)
	if c.ready != nil {
		c.ready <- ln.Addr().String()
	}

	jobs, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		elector.Run(jobs, jobList...)
	}()
	symDone := make(chan struct{})
	go func() { symbolicator.Run(jobs); close(symDone) }()
	// The alert watcher outlives the jobs: it queues alerts for what the writer commits while draining.
	watch, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := alerts.Watch(watch); err != nil {
			log.Error("alerts stopped", "err", err)
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		writer.Close()
		stopOTLP()
		waitOTLP()
		return fmt.Errorf("http server: %w", err)
	case err := <-otlpFailed:
		log.Error("OTLP receiver failed, stopping", "err", err)
	}

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	api.SetDraining()
	stopJobs()
	<-jobsDone
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if fuotaSrv != nil {
		fuotaSrv.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("in-flight requests did not finish in time", "err", err)
	}
	cancelBase()
	stopOTLP()
	if err := waitOTLP(); err != nil {
		log.Warn("OTLP receiver", "err", err)
	}
	writer.Close() // commits everything still queued and publishes its events
	stopWatch()
	<-watchDone
	stopRelay()
	bus.Close()
	<-symDone
	if err := db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listenGuard applies the process's connection limits to each of its listeners; each listener has its own
// budget, so a flood on one leaves the others theirs.
type listenGuard struct {
	cfg    Config
	exempt []netip.Prefix // trusted proxies: many clients behind one address
	log    *slog.Logger
}

// wrap limits ln; reject is what a refused connection is told before it closes (nil: nothing, for TLS and gRPC).
func (g listenGuard) wrap(ln net.Listener, name string, reject []byte) net.Listener {
	return netguard.Listen(ln, netguard.Limits{MaxConns: g.cfg.MaxConns, MaxConnsPerAddr: g.cfg.MaxConnsPerAddr,
		Exempt: g.exempt, Reject: reject, Name: name, Logger: g.log})
}

// warnInactive says which accepted settings this version does not act on, and what to use instead, so nobody
// relies on them silently.
func (c *serveCmd) warnInactive(cfg Config, log *slog.Logger) {
	for _, s := range cfg.inactive() {
		log.Warn("setting has no effect", "setting", s.setting, "instead", s.instead)
	}
}
