package symbol

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// The faults below are built from the committed test firmware: addresses come from its symbol table and from
// decoding its BL instructions, stack layouts follow the prologues the CFI describes (see the comments).

func symbolAddr(tb testing.TB, ix *Index, name string) (addr, size uint32) {
	tb.Helper()
	for _, s := range ix.elfSyms {
		if s.Name == name {
			return uint32(s.Value &^ 1), uint32(s.Size)
		}
	}
	tb.Fatalf("no symbol %s", name)
	return 0, 0
}

// blTarget decodes a Thumb-2 BL at addr and returns its target.
func blTarget(ix *Index, addr uint64) (uint64, bool) {
	hw1, _ := ix.halfword(addr)
	hw2, _ := ix.halfword(addr + 2)
	if !ix.isCall32(addr) || hw2&0xd000 != 0xd000 {
		return 0, false
	}
	s := uint32(hw1>>10) & 1
	j1, j2 := uint32(hw2>>13)&1, uint32(hw2>>11)&1
	i1, i2 := ^(j1^s)&1, ^(j2^s)&1
	imm := s<<24 | i1<<23 | i2<<22 | uint32(hw1&0x3ff)<<12 | uint32(hw2&0x7ff)<<1
	if s == 1 {
		imm |= 0xfe000000
	}
	return addr + 4 + uint64(int64(int32(imm))), true
}

// returnAddr returns the return address (Thumb bit set) of the first call from caller to callee.
func returnAddr(tb testing.TB, ix *Index, caller, callee string) uint32 {
	tb.Helper()
	lo, size := symbolAddr(tb, ix, caller)
	target, _ := symbolAddr(tb, ix, callee)
	for a := uint64(lo); a+4 <= uint64(lo+size); a += 2 {
		if t, ok := blTarget(ix, a); ok && t == uint64(target) {
			return uint32(a+4) | 1
		}
	}
	tb.Fatalf("no call from %s to %s", caller, callee)
	return 0
}

// sourceLine returns the line number of the first line of a test source containing text.
func sourceLine(tb testing.TB, file, text string) int {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "src", file))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), text) {
			return n
		}
	}
	tb.Fatalf("%s has no line with %q", file, text)
	return 0
}

type wantFrame struct {
	method   Method
	function string // the outermost (out-of-line) function of the frame
	file     string // optional: base name of the outermost frame's file
	line     int    // optional: the outermost frame's line
}

func checkBacktrace(t *testing.T, got []StackFrame, want []wantFrame) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		out := got[i].Frames[len(got[i].Frames)-1]
		ok = got[i].Method == want[i].method && out.Function == want[i].function &&
			(want[i].file == "" || filepath.Base(out.File) == want[i].file) &&
			(want[i].line == 0 || out.Line == want[i].line)
	}
	if !ok {
		for i, f := range got {
			t.Logf("got  #%d %-4s %#08x %v", i, f.Method, f.Address, f.Frames)
		}
		for i, w := range want {
			t.Logf("want #%d %-4s %s %s:%d", i, w.method, w.function, w.file, w.line)
		}
		t.Fatal("backtrace differs")
	}
}

// O2: write_register (a leaf, store_word inlined) takes a precise bus error. process_batch pushed {r4, lr},
// run_cycle {r4, r5, r6, lr}, main {r4, lr}, Reset_Handler {r3, lr} with lr = 0xffffffff at reset.
func o2BusFault(t *testing.T, ix *Index) *lodestone.Fault {
	wr, _ := symbolAddr(t, ix, "write_register")
	pc := wr
	for a := wr; a < wr+16; a += 2 {
		if fr := ix.Resolve(uint64(a)); fr[0].Function == "store_word" {
			pc = a
			break
		}
	}
	stale, _ := symbolAddr(t, ix, "firmware_version") // an odd word into .rodata: not after a BL
	f := &lodestone.Fault{
		FaultType: 2,
		CFSR:      0x8200, // PRECISERR | BFARVALID
		BFAR:      0x40100000,
		Registers: lodestone.Registers{PC: pc, LR: returnAddr(t, ix, "process_batch", "write_register"),
			R0: 501, R3: 0x40100000, SP: 0x20001f00, XPSR: 0x21000000},
		Stack: [16]uint32{
			0x11111111, returnAddr(t, ix, "run_cycle", "process_batch"), // process_batch: r4, lr
			0x22222222, 0x33333333, 0x44444444, returnAddr(t, ix, "main", "run_cycle"), // run_cycle: r4-r6, lr
			0x00000003, returnAddr(t, ix, "Reset_Handler", "main"), // main: r4, lr
			0x55555555, 0xffffffff, // Reset_Handler: r3, lr (reset value)
			returnAddr(t, ix, "run_cycle", "asm_checksum"), // stale, found by the scan
			stale | 1, 0x20000008, returnAddr(t, ix, "run_cycle", "legacy_crc") &^ 1, 0, 0,
		},
	}
	return f
}

func TestBacktraceCFIO2(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	f := o2BusFault(t, ix)
	got := ix.Backtrace(f)
	checkBacktrace(t, got, []wantFrame{
		{MethodPC, "write_register", "app.c", sourceLine(t, "app.c", "store_word(bus_hole, value);")},
		{MethodLR, "process_batch", "app.c", sourceLine(t, "app.c", "write_register((uint32_t)avg);")},
		{MethodCFI, "run_cycle", "app.c", sourceLine(t, "app.c", "process_batch(count_override);")},
		{MethodCFI, "main", "app.c", sourceLine(t, "app.c", "if (run_cycle(round) < 0)")},
		{MethodCFI, "Reset_Handler", "startup.c", sourceLine(t, "startup.c", "main();")},
		{MethodScan, "run_cycle", "app.c", sourceLine(t, "app.c", "total += asm_checksum(")},
	})
	// The faulting PC shows the inlined helper as its innermost frame.
	if fr := got[0].Frames; len(fr) != 2 || fr[0].Function != "store_word" || !fr[0].Inlined {
		t.Errorf("PC frame inline chain = %v", fr)
	}
	if got[1].Address != f.Registers.LR&^1 {
		t.Errorf("LR frame address %#x, want %#x", got[1].Address, f.Registers.LR&^1)
	}
}

// An SDK that records its handler's SP (ferrite's does) sends a snapshot holding the hardware exception frame;
// the faulting code's stack starts just above it.
func TestBacktraceFindsExceptionFrameInSnapshot(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	f := o2BusFault(t, ix)
	r := f.Registers
	orig := f.Stack
	f.Registers.SP = 0x20001ed0
	f.Stack = [16]uint32{0xaaaa0000, 0xaaaa0001, 0xaaaa0002, 0xaaaa0003,
		r.R0, r.R1, r.R2, r.R3, r.R12, r.LR, r.PC, r.XPSR,
		orig[0], orig[1], orig[2], orig[3]}
	checkBacktrace(t, ix.Backtrace(f), []wantFrame{
		{method: MethodPC, function: "write_register"},
		{method: MethodLR, function: "process_batch"},
		{method: MethodCFI, function: "run_cycle"},
		// run_cycle saved its lr at SP+20: beyond the snapshot, so the CFI walk stops here.
	})
}

// A fault in hand-written assembly without CFI: LR then a scan of the stack.
func TestBacktraceWithoutCFIUsesLRAndScan(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	ck, _ := symbolAddr(t, ix, "asm_checksum")
	f := &lodestone.Fault{
		FaultType: 2,
		Registers: lodestone.Registers{PC: ck + 4, LR: returnAddr(t, ix, "run_cycle", "asm_checksum"),
			SP: 0x20001f10},
		Stack: [16]uint32{0x22222222, 0x33333333, 0x44444444, returnAddr(t, ix, "main", "run_cycle"),
			0x00000003, returnAddr(t, ix, "Reset_Handler", "main"), 0xffffffff},
	}
	checkBacktrace(t, ix.Backtrace(f), []wantFrame{
		{MethodPC, "asm_checksum", "vectors.S", 0},
		{MethodLR, "run_cycle", "app.c", sourceLine(t, "app.c", "total += asm_checksum(")},
		{MethodScan, "main", "app.c", sourceLine(t, "app.c", "if (run_cycle(round) < 0)")},
		{MethodScan, "Reset_Handler", "startup.c", sourceLine(t, "startup.c", "main();")},
	})
}

// O0: a divide by zero in sensor_average. Every function keeps a frame pointer in r7: push {r7, lr},
// sub sp, #16, add r7, sp; the CFA is r7+24, so r7 is restored from each frame to find the next.
func TestBacktraceCFIO0FramePointer(t *testing.T) {
	ix := openTestELF(t, "firmware-O0.elf")
	avg, size := symbolAddr(t, ix, "sensor_average")
	var pc uint32
	for a := avg; a < avg+size; a += 2 {
		if hw, _ := ix.halfword(uint64(a)); hw&0xfff0 == 0xfb90 { // sdiv
			pc = a
		}
	}
	if pc == 0 {
		t.Fatal("no sdiv in sensor_average")
	}
	const sp = 0x20001f00
	f := &lodestone.Fault{
		FaultType: 3,
		CFSR:      1 << 25,
		Registers: lodestone.Registers{PC: pc, LR: 0x0800aaab, R7: sp, SP: sp},
		Stack: [16]uint32{
			0, 0x20000008, 0, 0, // sensor_average locals: n, s, i, acc
			sp + 24, returnAddr(t, ix, "process_batch", "sensor_average"), // its r7, lr
			0, 16, 0, 0, // process_batch locals
			sp + 48, returnAddr(t, ix, "run_cycle", "process_batch"), // its r7, lr
			0, 0, returnAddr(t, ix, "main", "run_cycle"), 0, // run_cycle's frame; its lr is further up
		},
	}
	checkBacktrace(t, ix.Backtrace(f), []wantFrame{
		{MethodPC, "sensor_average", "sensor.c", sourceLine(t, "sensor.c", "return acc / (int32_t)n;")},
		{MethodCFI, "process_batch", "app.c", sourceLine(t, "app.c", "sensor_average(samples, n);")},
		{MethodCFI, "run_cycle", "app.c", sourceLine(t, "app.c", "process_batch(count_override);")},
		{MethodScan, "main", "app.c", sourceLine(t, "app.c", "if (run_cycle(round) < 0)")},
	})
}

// Garbage registers and stack never panic and yield at most the PC frame plus what checks out.
func TestBacktraceGarbage(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	for _, f := range []*lodestone.Fault{
		{},
		{Registers: lodestone.Registers{PC: 0xffffffff, LR: 0xfffffff9, SP: 0xfffffff0}},
		{Registers: lodestone.Registers{PC: 0x08000100, SP: 0xffffffc0}, Stack: [16]uint32{1, 3, 5, 7, 0x08000001}},
	} {
		got := ix.Backtrace(f)
		if len(got) != 1 || got[0].Method != MethodPC {
			t.Errorf("Backtrace(%+v) = %v", f.Registers, got)
		}
	}
}

func TestIsReturnAddress(t *testing.T) {
	ix := openTestELF(t, "firmware-O2.elf")
	ra := returnAddr(t, ix, "run_cycle", "process_batch")
	if got, ok := ix.isReturnAddress(ra); !ok || got != uint64(ra&^1) {
		t.Errorf("isReturnAddress(%#x) = %#x, %v", ra, got, ok)
	}
	for _, w := range []uint32{ra &^ 1, ra + 2, 0x20000009, 0xfffffff9, 1, 0} {
		if _, ok := ix.isReturnAddress(w); ok {
			t.Errorf("isReturnAddress(%#x) = true", w)
		}
	}
}
