// Package crashtest builds fault records of the committed test firmware (symbol/testdata, built with
// arm-none-eabi-gcc by its build.sh) for the tests of several packages: the addresses come from the ELF's symbol
// table and its call instructions, and the stack snapshots follow the prologues its CFI describes.
package crashtest

import (
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// Firmware is one test ELF: its symbols and code.
type Firmware struct {
	tb   testing.TB
	syms map[string]elf.Symbol
	code []segment
}

type segment struct {
	addr uint32
	data []byte
}

// Open reads the ELF at path.
func Open(tb testing.TB, path string) *Firmware {
	tb.Helper()
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		tb.Fatal(err)
	}
	fw := &Firmware{tb: tb, syms: map[string]elf.Symbol{}}
	for _, s := range syms {
		if _, dup := fw.syms[s.Name]; !dup && s.Size > 0 {
			fw.syms[s.Name] = s
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			data := make([]byte, p.Filesz)
			if _, err := p.ReadAt(data, 0); err != nil {
				tb.Fatal(err)
			}
			fw.code = append(fw.code, segment{uint32(p.Vaddr), data})
		}
	}
	return fw
}

// Addr returns the address of a function (Thumb bit cleared).
func (fw *Firmware) Addr(name string) uint32 {
	fw.tb.Helper()
	s, ok := fw.syms[name]
	if !ok {
		fw.tb.Fatalf("crashtest: no symbol %s", name)
	}
	return uint32(s.Value &^ 1)
}

func (fw *Firmware) halfword(addr uint32) uint16 {
	for _, s := range fw.code {
		if addr >= s.addr && uint64(addr-s.addr)+2 <= uint64(len(s.data)) {
			return binary.LittleEndian.Uint16(s.data[addr-s.addr:])
		}
	}
	return 0
}

// ReturnAddr returns the return address (Thumb bit set) of the first call in caller to callee: a BL to callee's
// address, or, with callee "", the first BLX through a register.
func (fw *Firmware) ReturnAddr(caller, callee string) uint32 {
	fw.tb.Helper()
	s := fw.syms[caller]
	lo, hi := fw.Addr(caller), uint32(s.Value&^1+s.Size)
	var target uint32
	if callee != "" {
		target = fw.Addr(callee)
	}
	for a := lo; a+2 <= hi; a += 2 {
		hw1 := fw.halfword(a)
		if callee == "" && hw1&0xff87 == 0x4780 {
			return (a + 2) | 1
		}
		hw2 := fw.halfword(a + 2)
		if callee == "" || hw1&0xf800 != 0xf000 || hw2&0xd000 != 0xd000 {
			continue
		}
		sign := uint32(hw1>>10) & 1
		j1, j2 := uint32(hw2>>13)&1, uint32(hw2>>11)&1
		i1, i2 := ^(j1^sign)&1, ^(j2^sign)&1
		imm := sign<<24 | i1<<23 | i2<<22 | uint32(hw1&0x3ff)<<12 | uint32(hw2&0x7ff)<<1
		if sign == 1 {
			imm |= 0xfe000000
		}
		if a+4+imm == target {
			return (a + 4) | 1
		}
	}
	fw.tb.Fatalf("crashtest: no call from %s to %q", caller, callee)
	return 0
}

// The bus fault of the -O2 firmware: write_register (a leaf; store_word inlined) stores to an unmapped address.
// process_batch pushed {r4, lr}, run_cycle {r4, r5, r6, lr}, main {r4, lr}, Reset_Handler {r3, lr}.
func (fw *Firmware) busFault() chunk.Fault {
	return chunk.Fault{Type: 2, PC: fw.Addr("write_register") + 2, // the str of store_word
		LR: fw.ReturnAddr("process_batch", "write_register"), R0: 501, R3: 0x40100000, SP: 0x20001f00,
		XPSR: 0x21000000, CFSR: 0x8200, BFAR: 0x40100000}
}

// DeepBusFault is the bus fault recorded with the faulting code's SP: the snapshot holds the callers' saved
// registers, so CFI unwinds past process_batch to run_cycle, main and Reset_Handler.
func (fw *Firmware) DeepBusFault() chunk.Fault {
	f := fw.busFault()
	f.Stack = [16]uint32{
		0x11111111, fw.ReturnAddr("run_cycle", "process_batch"), // process_batch: r4, lr
		0x22222222, 0x33333333, 0x44444444, fw.ReturnAddr("main", "run_cycle"), // run_cycle: r4-r6, lr
		0x00000003, fw.ReturnAddr("Reset_Handler", "main"), // main: r4, lr
		0x55555555, 0xffffffff, // Reset_Handler: r3, lr (reset value)
	}
	return f
}

// ShallowBusFault is the same fault from a device whose SDK records its handler's SP: the snapshot is the
// handler's eight pushed registers and the hardware exception frame, nothing above, so the backtrace ends at
// the LR register's frame (process_batch) and CFI finds no third frame.
func (fw *Firmware) ShallowBusFault() chunk.Fault {
	f := fw.busFault()
	f.SP = 0x20001ec0
	f.Stack = [16]uint32{0x44444444, 0x55555555, 0x66666666, 0x77777777, 0x88888888, 0x99999999, 0xaaaaaaaa,
		0xbbbbbbbb, f.R0, f.R1, f.R2, f.R3, f.R12, f.LR, f.PC, f.XPSR}
	return f
}

// AreaFault is a bus fault in geo::Rect::area() (a leaf: a virtual call through a bad this pointer) of the -O2
// firmware. viaPair: called from geo::measure(a, b) by BLX, whose frame {r4, r5, r6, lr} is in the snapshot;
// otherwise called from shape_total through geo::measure(s), which tail-calls it, so the LR register points into
// shape_total: the same fault site under another caller.
func (fw *Firmware) AreaFault(viaPair bool) chunk.Fault {
	f := chunk.Fault{Type: 2, PC: fw.Addr("_ZNK3geo4Rect4areaEv"), R0: 0x40100000, SP: 0x20001f00,
		XPSR: 0x21000000, CFSR: 0x8200, BFAR: 0x40100004}
	if viaPair {
		f.LR = fw.ReturnAddr("_ZN3geo7measureERKNS_5ShapeES2_", "")
		f.Stack = [16]uint32{0x20001f40, 0, 0, fw.ReturnAddr("shape_total", "_ZN3geo7measureERKNS_5ShapeES2_")}
	} else {
		f.LR = fw.ReturnAddr("shape_total", "_ZN3geo7measureERKNS_5ShapeE")
	}
	return f
}

// Fault is a fault record as ingest stores it.
func Fault(f chunk.Fault) *lodestone.Fault {
	return &lodestone.Fault{FaultType: f.Type,
		Registers: lodestone.Registers{R0: f.R0, R1: f.R1, R2: f.R2, R3: f.R3, R12: f.R12, LR: f.LR, PC: f.PC,
			XPSR: f.XPSR, R4: f.R4_11[0], R5: f.R4_11[1], R6: f.R4_11[2], R7: f.R4_11[3], R8: f.R4_11[4],
			R9: f.R4_11[5], R10: f.R4_11[6], R11: f.R4_11[7], SP: f.SP},
		Stack: f.Stack, CFSR: f.CFSR, HFSR: f.HFSR, MMFAR: f.MMFAR, BFAR: f.BFAR}
}
