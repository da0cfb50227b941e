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
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// command is one subcommand; tests call Run with the arguments after the command name.
type command interface {
	Run(ctx context.Context, args []string) error
}

const rootLong = `lodestone — telemetry, crashes and firmware updates for fleets of embedded devices.

Start on a fresh machine with no setup (embedded SQLite under ./lodestone-data):
  lodestone

'lodestone' with no command, or with serve's flags before the command as ferrite-server takes them
('lodestone --db x serve'), runs serve. Configuration comes from flags, then environment variables, then a .env
file, then defaults: run 'lodestone help serve' for every setting.`

// commands lists every subcommand, in the order 'lodestone help' shows them.
func commands(stdout, stderr io.Writer, getenv func(string) string) []cmdSpec {
	return []cmdSpec{
		(&serveCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&loadgenCmd{stdout: stdout, stderr: stderr}).spec(),
		(&migrateCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&copyCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&symbolsCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&logsCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&reportCmd{kind: "report", stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&reportCmd{kind: "faults", stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&reportCmd{kind: "metrics", stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&backupCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&restoreCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&importFerriteCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&doctorCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&mcpCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&auditCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		(&routesCmd{stdout: stdout, stderr: stderr, getenv: getenv}).spec(),
		{use: "version", short: "print the version", setup: func(*flag.FlagSet) runFunc {
			return func(context.Context, []string) error {
				_, err := fmt.Fprintln(stdout, "lodestone", version)
				return err
			}
		}},
	}
}

// newRoot builds the command tree: cobra gives every command the same help, --version, completion and
// usage errors.
func newRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	specs := commands(stdout, stderr, getenv)
	// The root is serve as well (ferrite: plain 'lodestone' and 'lodestone --db x serve'); its flags are serve's,
	// hidden from the command list's help.
	serve := specs[0]
	serve.use, serve.footer = "lodestone", ""
	root := newCommand(serve)
	root.Short = "telemetry, crashes and firmware updates for fleets of embedded devices"
	root.Long = rootLong
	root.Version = version
	root.SetVersionTemplate("lodestone {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = false
	root.Flags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
		}
		return usageError{errors.New(msg)}
	}
	for _, s := range specs {
		root.AddCommand(newCommand(s))
	}
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "show the help of lodestone or of a command",
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			for _, sub := range c.Root().Commands() {
				names = append(names, sub.Name())
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 || target == nil {
				return usageError{fmt.Errorf("unknown help topic %q", strings.Join(args, " "))}
			}
			target.InitDefaultHelpFlag() // as 'X --help' shows it, so both print the same
			return target.Help()
		},
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return root
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	root := newRoot(stdout, stderr, getenv)
	root.SetArgs(doubleDashes(args, root))
	cmd, err := root.ExecuteContextC(ctx)
	return exitCode(err, stderr, cmd)
}

var version = "dev"
