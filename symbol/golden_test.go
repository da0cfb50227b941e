package symbol

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenFrame is one function/location pair of `addr2line -a -f -i -C` output.
type goldenFrame struct {
	function string // "??" when unknown
	location string // "file:line" or "??:?", without the discriminator
	disc     int
}

type goldenAddr struct {
	addr   uint64
	frames []goldenFrame
}

// readGolden parses the addr2line answers committed next to each test ELF (see testdata/build.sh).
func readGolden(tb testing.TB, path string) []goldenAddr {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	return parseAddr2line(tb, path, f)
}

func parseAddr2line(tb testing.TB, path string, r io.Reader) []goldenAddr {
	tb.Helper()
	var out []goldenAddr
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < len(lines); {
		a, err := strconv.ParseUint(strings.TrimPrefix(lines[i], "0x"), 16, 64)
		if err != nil || !strings.HasPrefix(lines[i], "0x") {
			tb.Fatalf("%s:%d: want an address, got %q", path, i+1, lines[i])
		}
		g := goldenAddr{addr: a}
		i++
		for i+1 < len(lines) && !strings.HasPrefix(lines[i], "0x") {
			loc, disc := lines[i+1], 0
			if j := strings.Index(loc, " (discriminator "); j >= 0 {
				disc, _ = strconv.Atoi(strings.TrimSuffix(loc[j+len(" (discriminator "):], ")"))
				loc = loc[:j]
			}
			g.frames = append(g.frames, goldenFrame{function: lines[i], location: loc, disc: disc})
			i += 2
		}
		out = append(out, g)
	}
	return out
}

func openTestELF(tb testing.TB, name string) *Index {
	tb.Helper()
	ix, err := Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return ix
}

// TestResolveMatchesAddr2line checks every even address of the test firmware's code against addr2line's answer:
// the whole inline chain, function names and file:line, and the innermost discriminator.
func TestResolveMatchesAddr2line(t *testing.T) {
	for _, opt := range []string{"O0", "O2"} {
		t.Run(opt, func(t *testing.T) {
			ix := openTestELF(t, "firmware-"+opt+".elf")
			golden := readGolden(t, filepath.Join("testdata", "firmware-"+opt+".addr2line"))
			if len(golden) < 300 {
				t.Fatalf("only %d golden addresses", len(golden))
			}
			bad, inlined := 0, 0
			for _, g := range golden {
				got := ix.Resolve(g.addr)
				if len(got) > 1 {
					inlined++
				}
				if msg := compareFrames(got, g.frames); msg != "" {
					bad++
					if bad <= 20 {
						t.Errorf("0x%08x: %s", g.addr, msg)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d addresses differ from addr2line", bad, len(golden))
			}
			if opt == "O2" && inlined < 20 {
				t.Errorf("only %d addresses with inline frames at -O2", inlined)
			}
		})
	}
}

func compareFrames(got []Frame, want []goldenFrame) string {
	format := func() string {
		var b strings.Builder
		for _, f := range got {
			fn := f.Function
			if fn == "" {
				fn = "??"
			}
			fmt.Fprintf(&b, "[%s %s d%d] ", fn, f.Location(), f.Discriminator)
		}
		b.WriteString(" want ")
		for _, f := range want {
			fmt.Fprintf(&b, "[%s %s d%d] ", f.function, f.location, f.disc)
		}
		return b.String()
	}
	if len(got) != len(want) {
		return format()
	}
	for i := range got {
		fn := got[i].Function
		if fn == "" {
			fn = "??"
		}
		if fn != want[i].function || got[i].Location() != want[i].location {
			return format()
		}
		// addr2line repeats the innermost discriminator on every inline frame; only the first is the row's.
		if i == 0 && got[i].Discriminator != want[i].disc {
			return format()
		}
		if got[i].Inlined != (i < len(got)-1) {
			return "Inlined flags wrong: " + format()
		}
	}
	return ""
}
