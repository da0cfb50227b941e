package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/mcpserver"
	"github.com/lodestone-fleet/lodestone/ota"
)

// mcpCmd serves MCP over stdio for an agent that starts lodestone itself: tools over a running server's API
// (--server, --token), or over the local database opened for reading, where the write tools are absent.
type mcpCmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

const mcpUsage = `Serves the Model Context Protocol over stdin/stdout, for AI agents (Claude Desktop, Claude Code, IDEs) that start
it as a local MCP server. Its tools read the fleet (summary, devices, telemetry, crash issues with symbolicated
backtraces, campaigns, logs) and, for a provisioner or admin token, prepare writes (resolve a crash issue, set a
firmware target, pause a campaign) that happen only after a confirm call with a single-use token.

With --server URL and --token (an API token, ldt_...), every tool calls that server's API with the token, so the
token's role decides which tools exist. Without --server it opens the local database (--db or --data-dir, as serve
uses them) read-only, beside a running server or without one: read tools only.

A running server also serves the same tools over streamable HTTP at POST /mcp.

Examples:
  lodestone mcp --server https://fleet.example.com --token $LODESTONE_TOKEN
  lodestone mcp --data-dir /var/lib/lodestone
`

func (c *mcpCmd) spec() cmdSpec {
	return cmdSpec{use: "mcp", short: "MCP tools for AI agents over stdio: a server's API (--server, --token) or the local data, read-only",
		long: mcpUsage, setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			server, token := remoteFlags(fs, c.getenv)
			return func(ctx context.Context, _ []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.serveMCP(ctx, cfg, server, token)
			}
		}}
}

func (c *mcpCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

func (c *mcpCmd) serveMCP(ctx context.Context, cfg Config, server, token *string) error {
	// stdout carries the protocol: logs go to stderr only.
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := mcpserver.Options{Version: version, Logger: log}
	if *server != "" {
		rm := newRemote(*server, *token, c.getenv, 60*time.Second)
		var me struct {
			Name string `json:"name"`
			Role string `json:"role"`
		}
		if err := rm.getJSON(ctx, "/auth/me", &me); err != nil {
			return fmt.Errorf("mcp: who is this token? %w", err)
		}
		role, ok := lodestone.ParseRole(me.Role)
		if !ok {
			return fmt.Errorf("mcp: %s answered an unknown role %q", *server, me.Role)
		}
		opts.Principal = &lodestone.Principal{Name: me.Name, Role: role}
		opts.Caller = mcpserver.Remote{Server: rm.server, Token: rm.token, User: rm.user, Pass: rm.pass,
			Client: rm.client}
		// The local table gives the tools their access; the server checks every call against its own.
		opts.Routes = httpapi.New(httpapi.Config{}, httpapi.Deps{Logger: log}).APIRoutes()
	} else {
		st, err := openReadOnly(ctx, cfg.DB)
		if err != nil {
			return err
		}
		defer st.Close()
		api := localAPI(st, log)
		opts.Routes, opts.Caller, opts.ReadOnly = api.APIRoutes(), mcpserver.InProcess{Handler: api.Handler()}, true
		opts.Principal = &lodestone.Principal{Name: "local", Role: lodestone.RoleViewer}
	}
	srv, err := mcpserver.New(opts)
	if err != nil {
		return err
	}
	stdin := c.stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	return srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{c.stdout}})
}

// localAPI is the API over a database opened read-only: the reads the MCP tools call, without credentials (the
// caller is whoever may read the data directory).
func localAPI(st lodestone.Store, log *slog.Logger) *httpapi.Server {
	deps := httpapi.Deps{Devices: st, Telemetry: st, Logger: log,
		OTA: ota.NewService(st, st, ota.Config{Logger: log})}
	deps.ELFs, _ = st.(lodestone.ELFService)
	deps.Crashes, _ = st.(lodestone.CrashService)
	deps.Logs, _ = st.(lodestone.LogStore)
	deps.Reports, _ = st.(lodestone.DeviceReporter)
	deps.Counts, _ = st.(lodestone.FleetCounter)
	return httpapi.New(httpapi.Config{}, deps)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// mountMCP serves the MCP tools at POST /mcp of api: tool calls go through api's own handler as the caller of the
// /mcp request, and every call is recorded when the store keeps an audit log.
func mountMCP(api *httpapi.Server, st lodestone.Store, log *slog.Logger) error {
	audit, _ := st.(lodestone.AuditLog)
	srv, err := mcpserver.New(mcpserver.Options{Routes: api.APIRoutes(),
		Caller: mcpserver.InProcess{Handler: api.Handler()}, Audit: audit, Version: version, Logger: log})
	if err != nil {
		return err
	}
	api.MountMCP(srv.Handler())
	return nil
}
