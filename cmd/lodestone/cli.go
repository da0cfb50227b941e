package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runFunc runs a command with its positional arguments once its flags are parsed.
type runFunc func(ctx context.Context, args []string) error

// cmdSpec is one subcommand: its help and its flags, declared once as a Go flag.FlagSet that cobra shows, completes
// and parses (pflag, so flags are written --name and may come before or after the arguments).
type cmdSpec struct {
	use       string // the command name and its arguments: "backup FILE"
	short     string // one line for 'lodestone help'
	long      string // the help text above Usage and Flags
	footer    string // printed after the flags (serve's environment variables)
	args      cobra.PositionalArgs
	validArgs []string // completions of the first argument
	// setup registers the flags on fs, bound to the variables the returned function reads.
	setup func(fs *flag.FlagSet) runFunc
	subs  []cmdSpec // commands under this one (report stability)
}

// usageError is a mistake in the command line: exit status 2, as the Go tools use for usage errors.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageArgs turns cobra's argument checks into usage errors.
func usageArgs(checks ...cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		for _, check := range checks {
			if err := check(cmd, args); err != nil {
				return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
			}
		}
		return nil
	}
}

var noArgs = usageArgs(func(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
})

// exactArgs wants exactly the arguments the command's use line names after the command: "FILE", "upload FILE".
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return fmt.Errorf("want exactly %s, got %d argument(s)", strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// newCommand builds the cobra command of s. Building opens nothing, so the whole tree is built for every run.
func newCommand(s cmdSpec) *cobra.Command {
	fs := flag.NewFlagSet(strings.Fields(s.use)[0], flag.ContinueOnError)
	run := s.setup(fs)
	cmd := &cobra.Command{
		Use:   s.use,
		Short: s.short,
		Long:  strings.Trim(s.long, "\n"),
		Args:  s.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			// pflag set the values; record them as set in fs too, so a command can tell (fs.Visit) which
			// flags were given. Setting a plain value twice changes nothing.
			var err error
			cmd.Flags().Visit(func(f *pflag.Flag) {
				if fs.Lookup(f.Name) != nil && err == nil {
					err = fs.Set(f.Name, f.Value.String())
				}
			})
			if err != nil {
				return usageError{err}
			}
			return run(cmd.Context(), args)
		},
		ValidArgs:     s.validArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	if s.args == nil {
		cmd.Args = noArgs
	}
	cmd.Flags().AddGoFlagSet(fs)
	cmd.Flags().SortFlags = true
	for _, sub := range s.subs {
		cmd.AddCommand(newCommand(sub))
	}
	if s.footer != "" {
		cmd.SetUsageTemplate(cmd.UsageTemplate() + "\n" + strings.TrimRight(s.footer, "\n") + "\n")
	}
	return cmd
}

// runSpec runs one command alone with its arguments, as 'lodestone X args' would (tests call it through Run).
func runSpec(ctx context.Context, s cmdSpec, args []string, stdout, stderr io.Writer) error {
	cmd := newCommand(s)
	cmd.SetArgs(doubleDashes(args, cmd))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return cmd.ExecuteContext(ctx)
}

// doubleDashes rewrites -name to --name for the long flags of the command the arguments select, so that the Go
// flag syntax lodestone accepted before (-db x) keeps working; one-letter flags and values stay as they are.
func doubleDashes(args []string, root *cobra.Command) []string {
	target := root
	if c, _, err := root.Find(args); err == nil && c != nil {
		target = c
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if target.Flags().Lookup(name) != nil || (target == root && root.PersistentFlags().Lookup(name) != nil) {
			out[i] = "-" + a
		}
	}
	return out
}

// exitCode maps a command's error to the process status: 0 ok, 1 failure, 2 usage.
func exitCode(err error, stderr io.Writer, cmd *cobra.Command) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "lodestone:", err)
	var u usageError
	if errors.As(err, &u) {
		switch {
		case cmd == nil || cmd.Name() == "help":
			fmt.Fprintln(stderr, "Run 'lodestone help' for the commands.")
		default:
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return 2
	}
	return 1
}
