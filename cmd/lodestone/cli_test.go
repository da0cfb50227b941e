package main

import (
	"flag"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(t.Context(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// Every command has the same help: 'X --help' is 'help X', exits 0 and lists each of its flags with two dashes.
func TestEveryCommandHelpListsItsFlags(t *testing.T) {
	specs := commands(io.Discard, io.Discard, func(string) string { return "" })
	if len(specs) < 17 {
		t.Fatalf("%d commands", len(specs))
	}
	_, top, _ := runArgs(t, "help")
	for _, s := range specs {
		name := strings.Fields(s.use)[0]
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(top, "\n  "+name+" ") {
				t.Errorf("'lodestone help' does not list %s", name)
			}
			code, byFlag, errs := runArgs(t, name, "--help")
			if code != 0 || errs != "" {
				t.Fatalf("%s --help: exit %d, stderr %q", name, code, errs)
			}
			code, byHelp, _ := runArgs(t, "help", name)
			if code != 0 || byHelp != byFlag {
				t.Fatalf("help %s (exit %d) differs from %s --help:\n%s\n----\n%s", name, code, name, byHelp, byFlag)
			}
			if !strings.Contains(byFlag, "Usage:\n  lodestone "+name) || !strings.Contains(byFlag, "\nFlags:\n") {
				t.Fatalf("%s --help has no usage line or Flags section:\n%s", name, byFlag)
			}
			flags := strings.SplitN(byFlag, "\nFlags:\n", 2)[1]
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			s.setup(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(flags, "--"+f.Name+" ") && !strings.Contains(flags, "--"+f.Name+"\n") {
					t.Errorf("%s --help does not list --%s:\n%s", name, f.Name, flags)
				}
			})
			for _, l := range strings.Split(flags, "\n") {
				if f := strings.TrimSpace(l); strings.HasPrefix(f, "-") && !strings.Contains(f, "--") {
					t.Errorf("%s --help lists a flag without two dashes: %q", name, l)
				}
			}
		})
	}
}

func TestVersionFlagAndCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errs := runArgs(t, args...)
		if code != 0 || out != "lodestone "+version+"\n" || errs != "" {
			t.Errorf("%v: exit %d, %q, stderr %q", args, code, out, errs)
		}
	}
}

// 0 ok, 1 the command failed, 2 the command line is wrong.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing", "lodestone.db")
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"routes"}, 0, ""},
		{[]string{"help", "routes"}, 0, ""},
		{[]string{"migrate", "status", "--db", missing}, 1, "no such file"},
		{[]string{"report", "--db", missing}, 1, "no such file"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, 2, "unknown help topic"},
		{[]string{"routes", "--frobnicate"}, 2, "unknown flag: --frobnicate"},
		{[]string{"faults", "--limit", "many"}, 2, "invalid argument"},
		{[]string{"migrate"}, 2, "want exactly status or up"},
		{[]string{"migrate", "sideways"}, 2, `invalid argument "sideways"`},
		{[]string{"backup"}, 2, "want exactly one FILE"},
		{[]string{"symbols", "download", "x.elf"}, 2, `unknown action "download"`},
		{[]string{"routes", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--version"}, 2, "unknown flag: --version"},
		{[]string{"audit", "verify", "--limit", "5"}, 2, "--limit does not apply"},
	} {
		code, _, errs := runArgs(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
		if tc.code == 2 && !strings.Contains(errs, "Run 'lodestone") {
			t.Errorf("%v: a usage error does not say where the usage is: %q", tc.args, errs)
		}
	}
}

// Flags keep working as lodestone took them before: one dash (Go's flag syntax), and serve's flags before the
// command as ferrite-server takes them.
func TestFlagCompatibility(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "x.db")
	for _, args := range [][]string{
		{"migrate", "status", "-db", missing},
		{"migrate", "status", "-db=" + missing},
		{"--db", missing, "migrate", "status"},
		{"migrate", "--db", missing, "status"},
	} {
		code, _, errs := runArgs(t, args...)
		if code != 1 || !strings.Contains(errs, missing) {
			t.Errorf("%v: exit %d, stderr %q; want the database %s to be used", args, code, errs, missing)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_lodestone", "zsh": "#compdef lodestone",
		"fish": "complete -c lodestone"} {
		code, out, errs := runArgs(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) || errs != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script has no %q", shell, code, errs, want)
		}
	}
	// The scripts ask the binary; it completes commands, arguments and flags.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "mig"}, "migrate"},
		{[]string{"__complete", "migrate", ""}, "status"},
		{[]string{"__complete", "backup", "--fo"}, "--force"},
		{[]string{"__complete", "help", "rou"}, "routes"},
	} {
		code, out, _ := runArgs(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, out, tc.want)
		}
	}
}

// Without a terminal the progress bar prints nothing: the command's summary says what was done.
func TestProgressBarQuietWithoutTerminal(t *testing.T) {
	var b strings.Builder
	p := newProgressBar(&b, "backup", 100, true)
	p.Set(50)
	p.Done(100)
	if b.Len() != 0 {
		t.Fatalf("progress written to a non-terminal: %q", b.String())
	}
}

// The log writes the address as --http gave it: 0.0.0.0:4000, not the [::]:4000 Go reports for it.
func TestShownAddr(t *testing.T) {
	for _, tc := range []struct {
		configured string
		bound      net.Addr
		want       string
	}{
		{"0.0.0.0:4000", &net.TCPAddr{IP: net.IPv6unspecified, Port: 4000}, "0.0.0.0:4000"},
		{":4000", &net.TCPAddr{IP: net.IPv6unspecified, Port: 4000}, ":4000"},
		{"0.0.0.0:0", &net.TCPAddr{IP: net.IPv6unspecified, Port: 41234}, "0.0.0.0:41234"},
		{"127.0.0.1:0", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, "127.0.0.1:5555"},
		{"[::1]:4000", &net.TCPAddr{IP: net.IPv6loopback, Port: 4000}, "[::1]:4000"},
	} {
		if got := shownAddr(tc.configured, tc.bound); got != tc.want {
			t.Errorf("shownAddr(%q, %v) = %q, want %q", tc.configured, tc.bound, got, tc.want)
		}
	}
}
