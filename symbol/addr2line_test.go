package symbol

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const addr2lineBin = "arm-none-eabi-addr2line"

// codeAddresses lists every even address of the index's executable sections.
func codeAddresses(ix *Index) []uint64 {
	var out []uint64
	for _, s := range ix.sections {
		if s.exec {
			for a := s.addr; a < s.addr+s.size; a += 2 {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestResolveMatchesLiveAddr2line repeats the golden comparison against the addr2line installed here, so a
// newer binutils that answers differently is noticed. The committed goldens cover machines without it.
func TestResolveMatchesLiveAddr2line(t *testing.T) {
	bin, err := exec.LookPath(addr2lineBin)
	if err != nil {
		t.Skip(addr2lineBin + " not installed (apt-get install binutils-arm-none-eabi); goldens still checked")
	}
	for _, opt := range []string{"O0", "O2"} {
		t.Run(opt, func(t *testing.T) {
			elf := filepath.Join("testdata", "firmware-"+opt+".elf")
			ix := openTestELF(t, "firmware-"+opt+".elf")
			addrs := codeAddresses(ix)
			var in bytes.Buffer
			for _, a := range addrs {
				fmt.Fprintf(&in, "0x%08x\n", a)
			}
			cmd := exec.Command(bin, "-a", "-f", "-i", "-C", "-e", elf)
			cmd.Stdin = &in
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			live := parseAddr2line(t, addr2lineBin, bytes.NewReader(out))
			if len(live) != len(addrs) {
				t.Fatalf("addr2line answered %d of %d addresses", len(live), len(addrs))
			}
			for _, g := range live {
				if msg := compareFrames(ix.Resolve(g.addr), g.frames); msg != "" {
					t.Errorf("0x%08x: %s", g.addr, msg)
				}
			}
		})
	}
}

var benchIndexNs = map[string]float64{}

// BenchmarkResolve measures addresses per second from a warm index, with and without the answer cache, and
// from spawning addr2line once per address as ferrite-server does, in the same run. The addr2line sub-benchmark
// reports how many times faster the index is.
//
//	go test ./symbol -run '^$' -bench Resolve
func BenchmarkResolve(b *testing.B) {
	ix := openTestELF(b, "firmware-O2.elf")
	addrs := codeAddresses(ix)
	for _, a := range addrs {
		ix.Resolve(a) // warm the cache
	}
	report := func(b *testing.B, name string) {
		nsPerAddr := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(1e9/nsPerAddr, "addrs/s")
		benchIndexNs[name] = nsPerAddr
	}
	b.Run("index/cached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ix.Resolve(addrs[i%len(addrs)])
		}
		report(b, "cached")
	})
	b.Run("index/uncached", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ix.resolve(addrs[i%len(addrs)])
		}
		report(b, "uncached")
	})
	b.Run("addr2line/spawn-per-address", func(b *testing.B) {
		bin, err := exec.LookPath(addr2lineBin)
		if err != nil {
			b.Skip(addr2lineBin + " not installed")
		}
		elf := filepath.Join("testdata", "firmware-O2.elf")
		for i := 0; b.Loop(); i++ {
			out, err := exec.Command(bin, "-f", "-i", "-C", "-e", elf, fmt.Sprintf("0x%08x", addrs[i%len(addrs)])).Output()
			if err != nil || !strings.Contains(string(out), ":") {
				b.Fatalf("addr2line: %v %q", err, out)
			}
		}
		nsPerAddr := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(1e9/nsPerAddr, "addrs/s")
		if ns := benchIndexNs["uncached"]; ns > 0 {
			b.ReportMetric(nsPerAddr/ns, "x_uncached_index_faster")
		}
		if ns := benchIndexNs["cached"]; ns > 0 {
			b.ReportMetric(nsPerAddr/ns, "x_cached_index_faster")
		}
	})
	// One addr2line process answering every address on stdin: the best addr2line can do, for comparison.
	b.Run("addr2line/one-process-all-addresses", func(b *testing.B) {
		bin, err := exec.LookPath(addr2lineBin)
		if err != nil {
			b.Skip(addr2lineBin + " not installed")
		}
		var in bytes.Buffer
		for _, a := range addrs {
			fmt.Fprintf(&in, "0x%08x\n", a)
		}
		elf := filepath.Join("testdata", "firmware-O2.elf")
		for b.Loop() {
			cmd := exec.Command(bin, "-f", "-i", "-C", "-e", elf)
			cmd.Stdin = bytes.NewReader(in.Bytes())
			if _, err := cmd.Output(); err != nil {
				b.Fatal(err)
			}
		}
		nsPerAddr := float64(b.Elapsed().Nanoseconds()) / float64(b.N*len(addrs))
		b.ReportMetric(1e9/nsPerAddr, "addrs/s")
		if ns := benchIndexNs["uncached"]; ns > 0 {
			b.ReportMetric(nsPerAddr/ns, "x_uncached_index_faster")
		}
	})
}

// BenchmarkIndexBuild measures building an index from an ELF file.
func BenchmarkIndexBuild(b *testing.B) {
	for b.Loop() {
		openTestELF(b, "firmware-O2.elf")
	}
}
