package symbol

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestBuildIDAndVersion(t *testing.T) {
	for _, name := range []string{"firmware-O0.elf", "firmware-O2.elf"} {
		ix := openTestELF(t, name)
		// readelf -n prints the same id; it is checked against the note's raw bytes here.
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		id := ix.BuildID()
		if len(id) != 20 || !bytes.Contains(raw, append([]byte("GNU\x00"), id...)) {
			t.Errorf("%s: build id %x not the note's 20 bytes", name, id)
		}
		if h := ix.BuildIDHex(); len(h) != 40 || strings.ToLower(h) != h {
			t.Errorf("%s: BuildIDHex = %q", name, h)
		}
		var want uint64
		for _, c := range id[:8] {
			want = want<<8 | uint64(c)
		}
		if ix.BuildID64() != want {
			t.Errorf("%s: BuildID64 = %x, want %x", name, ix.BuildID64(), want)
		}
		if v, ok := ix.FirmwareVersion(); !ok || v != "1.4.2" {
			t.Errorf("%s: FirmwareVersion = %q, %v", name, v, ok)
		}
	}
	// The two builds differ, so their ids must too.
	if bytes.Equal(openTestELF(t, "firmware-O0.elf").BuildID(), openTestELF(t, "firmware-O2.elf").BuildID()) {
		t.Error("O0 and O2 builds share a build id")
	}
}

func TestFindBuildIDNote(t *testing.T) {
	note := func(name string, typ byte, desc []byte) []byte {
		b := []byte{byte(len(name)), 0, 0, 0, byte(len(desc)), 0, 0, 0, typ, 0, 0, 0}
		b = append(b, name...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	id := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	data := append(note("GNU\x00", 1, []byte{0, 0, 0, 0}), note("GNU\x00", 3, id)...)
	if got := findBuildIDNote(data); !bytes.Equal(got, id) {
		t.Errorf("got %x", got)
	}
	for _, bad := range [][]byte{nil, data[:20], note("XYZ\x00", 3, id), {255, 255, 255, 255, 0, 0, 0, 0, 3, 0, 0, 0}} {
		if got := findBuildIDNote(bad); got != nil {
			t.Errorf("findBuildIDNote(%x) = %x", bad, got)
		}
	}
}

func TestNewRejectsOtherFiles(t *testing.T) {
	if _, err := New(bytes.NewReader([]byte("not an elf file at all"))); err == nil {
		t.Error("garbage accepted")
	}
	exe, err := os.Executable() // the test binary: an ELF, but not ARM
	if err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(exe); err == nil {
		defer f.Close()
		if _, err := New(f); err != ErrNotARM {
			t.Errorf("host executable: err = %v, want ErrNotARM", err)
		}
	}
	if _, err := Open(filepath.Join("testdata", "missing.elf")); err == nil {
		t.Error("missing file accepted")
	}
}

// Outside every section addr2line says "??" and "??:0"; Resolve returns one empty frame.
func TestResolveOutsideSections(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	for _, a := range []uint64{0, 0x1000, 0x30000000, 0xfffffffe} {
		got := ix.Resolve(a)
		if len(got) != 1 || got[0] != (Frame{}) || got[0].String() != "?? at ??:?" {
			t.Errorf("Resolve(%#x) = %v", a, got)
		}
	}
	// The Thumb bit is ignored.
	fn := openTestELF(t, "firmware-O2.elf")
	wr, _ := symbolAddr(t, fn, "write_register")
	if a, b := fn.Resolve(uint64(wr)), fn.Resolve(uint64(wr|1)); len(a) == 0 || a[0] != b[0] {
		t.Errorf("Thumb bit changes the answer: %v vs %v", a, b)
	}
}

// Many goroutines resolving through one index and its cache agree with a fresh index (run with -race).
func TestResolveConcurrent(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	ix.cache.init(64) // small, so the cache is reset while readers use it
	ref := openTestELF(t, "firmware-O2.elf")
	addrs := codeAddresses(ix)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range addrs {
				a := addrs[(i*7+g*13)%len(addrs)]
				got, want := ix.Resolve(a), ref.resolve(a)
				if len(got) != len(want) || got[0] != want[0] {
					errs <- "mismatch"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := len(ix.cache.m); n > 64 {
		t.Errorf("cache grew to %d entries past its bound", n)
	}
}
