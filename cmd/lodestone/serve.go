package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lodestone-fleet/lodestone/netguard"
)

// serveCmd runs the server until its context ends, then shuts down gracefully: readiness goes 503, the listeners
// close, in-flight requests finish, queued writes commit, the database closes (see server.run).
type serveCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// ready, if set, receives the bound address once the server accepts connections (tests).
	ready chan<- string
	// dir is where the .env search starts; empty means the working directory.
	dir string
	// listen, if set, replaces net.Listen for the main API's listener (tests).
	listen func(network, addr string) (net.Listener, error)
}

const serveLong = `Runs the server. With no flags it serves 0.0.0.0:4000 (every IPv4 and IPv6 address; the log writes it
[::]:4000) and keeps its data in ./lodestone-data (embedded SQLite). Devices post ferrite chunks to
POST /ingest/chunks; the read API (/devices, /faults, /metrics, ...) needs the admin's Basic credentials.`

func (c *serveCmd) spec() cmdSpec {
	return cmdSpec{use: "serve", short: "run the server (the default)", long: serveLong, footer: envHelp(),
		setup: func(fs *flag.FlagSet) runFunc {
			cfg, envErr := c.envConfig()
			cfg.registerFlags(fs)
			return func(ctx context.Context, _ []string) error {
				if envErr != nil {
					return envErr
				}
				if err := cfg.resolve(); err != nil {
					return err
				}
				return c.serve(ctx, *cfg)
			}
		}}
}

// envHelp lists the environment variables serve reads, after its flags.
func envHelp() string {
	var b strings.Builder
	b.WriteString("Environment (also read from a .env file in this directory or a parent):\n")
	for _, e := range envVars {
		if e.help != "" {
			fmt.Fprintf(&b, "  %-22s %s\n", e.name, e.help)
		}
	}
	return b.String()
}

// flags is serve's flag set bound to cfg.
func (c *serveCmd) flags(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.registerFlags(fs)
	return fs
}

// envConfig is the defaults overlaid with the .env file and the environment; flags come on top.
func (c *serveCmd) envConfig() (*Config, error) {
	cfg := defaultConfig()
	wd := c.dir
	if wd == "" {
		wd, _ = os.Getwd()
	}
	err := loadEnv(&cfg, c.getenv, wd)
	return &cfg, err
}

// config builds the configuration from defaults, .env, the environment and args, as the command line does.
func (c *serveCmd) config(args []string) (Config, error) {
	cfg, err := c.envConfig()
	if err != nil {
		return *cfg, err
	}
	pfs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	pfs.SetOutput(io.Discard)
	pfs.AddGoFlagSet(c.flags(cfg))
	if err := pfs.Parse(args); err != nil {
		return *cfg, err
	}
	// ferrite order: options, then the subcommand word.
	rest := pfs.Args()
	if len(rest) > 0 && rest[0] == "serve" {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return *cfg, fmt.Errorf("unknown command %q (try 'lodestone help')", rest[0])
	}
	return *cfg, cfg.resolve()
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
	return c.serve(ctx, cfg)
}

// serve runs the server with a resolved configuration until ctx ends.
func (c *serveCmd) serve(ctx context.Context, cfg Config) error {
	log, err := newLogger(c.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", cfg.DataDir, err)
	}
	c.warnInactive(cfg, log)
	s, err := c.setup(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.run(ctx)
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
