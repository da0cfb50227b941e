// Command lodestone is a self-hosted server for fleets of embedded devices: telemetry, crash dumps and firmware
// updates in one binary with an embedded database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

const usage = `lodestone — telemetry, crashes and firmware updates for fleets of embedded devices.

Usage:
  lodestone [flags] [command] [command flags]

Commands:
  serve     run the server (the default)
  loadgen   measure ingest throughput: simulated devices posting sessions over HTTP
  migrate   show or apply database schema migrations (status, up)
  copy      move a whole instance from SQLite to PostgreSQL (and its blobs)
  symbols   upload firmware ELF files for crash symbolication
  logs      export stored OTLP log records in detritus' daily NDJSON files
  report    devices with their record counts (faults, metrics: the latest of each), as a table or JSON
  backup    download a consistent snapshot of a server's database, or take one of the local database
  restore   put a backup in place of the local database (with the server stopped)
  mcp       MCP tools for AI agents over stdio: a server's API (--server, --token) or the local data, read-only
  doctor    check an installation (configuration, database, disk, blobs, certificates, backups); --json
  audit     list the audit log of operator actions, or check its hash chain (audit verify)
  routes    list the HTTP routes with their access and summary; --json
  import-ferrite  import a ferrite-server database (devices, groups, history)
  version   print the version
  help      show this help, or 'lodestone help COMMAND'

Start on a fresh machine with no setup (embedded SQLite under ./lodestone-data):
  lodestone

Configuration comes from flags, then environment variables, then a .env file, then defaults.
Run 'lodestone help serve' for every setting.
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd, rest := "serve", args
	if len(args) > 0 && isCommand(args[0]) {
		cmd, rest = args[0], args[1:]
	}
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, usage) // plain "lodestone -h": the commands, not only serve's flags
		return 0
	}
	// ferrite-server takes its options before the subcommand ("--db x serve"); serve accepts that order itself.
	var c command
	switch cmd {
	case "serve":
		c = &serveCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "loadgen":
		c = &loadgenCmd{stdout: stdout, stderr: stderr}
	case "migrate":
		c = &migrateCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "copy":
		c = &copyCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "symbols":
		c = &symbolsCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "logs":
		c = &logsCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "report", "faults", "metrics":
		c = &reportCmd{kind: cmd, stdout: stdout, stderr: stderr, getenv: getenv}
	case "backup":
		c = &backupCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "restore":
		c = &restoreCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "import-ferrite":
		c = &importFerriteCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "doctor":
		c = &doctorCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "mcp":
		c = &mcpCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "audit":
		c = &auditCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "routes":
		c = &routesCmd{stdout: stdout, stderr: stderr, getenv: getenv}
	case "version":
		fmt.Fprintln(stdout, "lodestone", version)
		return 0
	case "help":
		return help(rest, stdout, getenv)
	}
	if err := c.Run(ctx, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "lodestone:", err)
		return 1
	}
	return 0
}

var version = "dev"

func isCommand(s string) bool {
	switch s {
	case "serve", "loadgen", "migrate", "copy", "symbols", "logs", "version", "help",
		"report", "faults", "metrics", "backup", "restore", "import-ferrite", "doctor", "mcp", "audit", "routes":
		return true
	}
	return false
}

func help(args []string, stdout io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "serve":
		c := &serveCmd{stdout: stdout, stderr: stdout, getenv: getenv}
		c.Run(context.Background(), []string{"-h"})
	case "loadgen":
		c := &loadgenCmd{stdout: stdout, stderr: stdout}
		c.Run(context.Background(), []string{"-h"})
	case "migrate":
		fmt.Fprint(stdout, migrateUsage)
	case "copy":
		c := &copyCmd{stdout: stdout, stderr: stdout, getenv: getenv}
		c.Run(context.Background(), []string{"-h"})
	case "symbols":
		fmt.Fprint(stdout, symbolsUsage)
	case "logs":
		fmt.Fprint(stdout, logsUsage)
	case "report", "faults", "metrics":
		fmt.Fprint(stdout, reportUsage)
	case "mcp":
		fmt.Fprint(stdout, mcpUsage)
	case "backup":
		fmt.Fprint(stdout, backupUsage)
	case "restore":
		fmt.Fprint(stdout, restoreUsage)
	case "doctor":
		fmt.Fprint(stdout, doctorUsage)
	case "audit":
		fmt.Fprint(stdout, auditUsage)
	case "routes":
		fmt.Fprint(stdout, routesUsage)
	case "import-ferrite":
		c := &importFerriteCmd{stdout: stdout, stderr: stdout, getenv: getenv}
		c.Run(context.Background(), []string{"-h"})
	default:
		fmt.Fprintf(stdout, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return 0
}
