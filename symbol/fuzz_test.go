package symbol

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// FuzzIndex feeds mutated ELF files through indexing, resolving and unwinding: uploads are untrusted.
func FuzzIndex(f *testing.F) {
	for _, name := range []string{"firmware-O0.elf", "firmware-O2.elf"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(0x08000100))
	}
	f.Fuzz(func(t *testing.T, data []byte, addr uint32) {
		ix, err := New(bytes.NewReader(data))
		if err != nil {
			return
		}
		ix.Resolve(uint64(addr))
		ix.BuildID()
		ix.FirmwareVersion()
		fault := &lodestone.Fault{Registers: lodestone.Registers{PC: addr, LR: addr + 5, SP: 0x20000000}}
		for i := range fault.Stack {
			fault.Stack[i] = addr + uint32(i)*4 + 1
		}
		ix.Backtrace(fault)
	})
}

// FuzzFrameTable runs arbitrary .debug_frame contents through parsing and row evaluation.
func FuzzFrameTable(f *testing.F) {
	for _, name := range []string{"firmware-O0.elf", "firmware-O2.elf"} {
		ef, err := elf.Open(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		data, err := ef.Section(".debug_frame").Data()
		ef.Close()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint32(0x08000100))
	}
	f.Add([]byte{12, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 3, 0, 2, 0x7c, 14, 0x0c, 13, 0}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, pc uint32) {
		tab, err := parseFrameTable(data)
		if err != nil {
			return
		}
		for _, fd := range tab.fdes {
			fd.rowAt(uint64(pc))
			fd.rowAt(fd.lo)
		}
	})
}
