package symbol

import (
	"github.com/lodestone-fleet/lodestone"
)

// Method says how a backtrace frame was found, from most to least certain.
type Method string

// Frame-finding methods.
const (
	MethodPC   Method = "pc"   // the faulting PC from the exception frame
	MethodLR   Method = "lr"   // the LR register: the return address of a function that had not saved it
	MethodCFI  Method = "cfi"  // unwound with .debug_frame rules from registers and the stack snapshot
	MethodScan Method = "scan" // a stack word pointing just after a BL/BLX: likely, not certain
)

// StackFrame is one entry of a backtrace.
type StackFrame struct {
	// Address is the PC for the first frame and a return address for the others, Thumb bit cleared.
	Address uint32
	Method  Method
	// Frames is the inline chain at Address (for return addresses: at the call instruction), innermost first.
	Frames []Frame
}

// maxDepth bounds CFI unwinding; the 16-word snapshot rarely covers more than a few frames.
const maxDepth = 32

// stackMemory is the stack snapshot placed at the address it was read from.
type stackMemory struct {
	base  uint32
	words [16]uint32
}

func (m *stackMemory) read(addr uint32) (uint32, bool) {
	if addr < m.base || addr&3 != 0 || (addr-m.base)/4 >= uint32(len(m.words)) {
		return 0, false
	}
	return m.words[(addr-m.base)/4], true
}

// end is the address just past the snapshot, computed without 32-bit wrap-around.
func (m *stackMemory) end() uint64 { return uint64(m.base) + 4*uint64(len(m.words)) }

// Backtrace recovers the call stack of a fault: the PC, then callers unwound with .debug_frame CFI as far as the
// registers and the 16-word stack snapshot allow (the LR register stands in for a leaf function's return
// address), then return addresses found by scanning the rest of the snapshot. Without CFI for the PC the LR and
// the scan are used directly. Each frame says how it was found.
//
// The snapshot is taken to start at Registers.SP. When the snapshot holds the hardware exception frame itself
// (an SDK that records its handler's SP), the faulting context's stack is taken to start just above it.
func (ix *Index) Backtrace(f *lodestone.Fault) []StackFrame {
	mem := &stackMemory{base: f.Registers.SP, words: f.Stack}
	r := f.Registers
	var regs [numRegs]uint32
	var known [numRegs]bool
	for i, v := range []uint32{r.R0, r.R1, r.R2, r.R3, r.R4, r.R5, r.R6, r.R7, r.R8, r.R9, r.R10, r.R11, r.R12,
		faultSP(f), r.LR, r.PC} {
		regs[i], known[i] = v, true
	}

	var out []StackFrame
	add := func(addr uint32, m Method) {
		look := uint64(addr)
		if m != MethodPC {
			look -= 2 // inside the call instruction, so the line is the call's
		}
		out = append(out, StackFrame{Address: addr, Method: m, Frames: ix.Resolve(look)})
	}
	pc := r.PC &^ 1
	add(pc, MethodPC)

	scanFrom := regs[13]
	unwound := false
	if ix.cfi != nil {
		lookup := uint64(pc)
		for depth := 0; depth < maxDepth; depth++ {
			next, ok := ix.unwindStep(lookup, depth == 0, &regs, &known, mem)
			if !ok {
				break
			}
			unwound = true
			if regs[13] > scanFrom {
				scanFrom = regs[13]
			}
			add(next.ra, next.method)
			lookup = uint64(next.ra) - 2
		}
	}
	if !unwound {
		if lr, ok := ix.codeAddress(r.LR); ok {
			add(lr, MethodLR)
		}
	}
	// Scan the snapshot above the deepest stack pointer the CFI walk reached.
	for a := (uint64(max(scanFrom, mem.base)) + 3) &^ 3; a < mem.end(); a += 4 {
		w, _ := mem.read(uint32(a))
		if ra, ok := ix.isReturnAddress(w); ok {
			if n := len(out); n > 0 && out[n-1].Address == uint32(ra) && out[n-1].Method == MethodLR {
				continue // the LR register already reported this return address
			}
			add(uint32(ra), MethodScan)
		}
	}
	return out
}

// faultSP returns the stack pointer of the faulting code. When the snapshot contains the exception frame that
// matches the recorded registers, the stack above that frame is the faulting code's (plus the alignment word
// the core inserts when xPSR bit 9 is set). Otherwise the recorded SP is taken as the faulting code's.
func faultSP(f *lodestone.Fault) uint32 {
	r := f.Registers
	frame := [8]uint32{r.R0, r.R1, r.R2, r.R3, r.R12, r.LR, r.PC, r.XPSR}
	for k := 0; k+8 <= len(f.Stack); k++ {
		if [8]uint32(f.Stack[k:k+8]) == frame {
			sp := r.SP + 4*uint32(k+8)
			if r.XPSR&(1<<9) != 0 {
				sp += 4
			}
			return sp
		}
	}
	return r.SP
}

// codeAddress accepts a register value as a return address: Thumb bit set, inside an executable section (so
// EXC_RETURN values such as 0xFFFFFFF9 are rejected).
func (ix *Index) codeAddress(v uint32) (uint32, bool) {
	if v&1 == 0 || !ix.inText(uint64(v&^1)) {
		return 0, false
	}
	return v &^ 1, true
}

type unwound struct {
	ra     uint32
	method Method
}

// unwindStep applies the CFI row at pc to the registers, leaving the caller's registers in regs, and returns
// the caller's return address. It fails when there is no FDE, the rules need unknown values, or the stack would
// not move up.
func (ix *Index) unwindStep(pc uint64, first bool, regs *[numRegs]uint32, known *[numRegs]bool, mem *stackMemory) (unwound, bool) {
	fd := ix.cfi.find(pc)
	if fd == nil {
		return unwound{}, false
	}
	row, err := fd.rowAt(pc)
	if err != nil || row.cfaExpr || row.cfaReg >= numRegs || !known[row.cfaReg] {
		return unwound{}, false
	}
	cfa := uint32(int64(regs[row.cfaReg]) + row.cfaOff)
	var next [numRegs]uint32
	var nextKnown [numRegs]bool
	for i := range numRegs {
		rule := row.regs[i]
		switch rule.kind {
		case ruleSame:
			next[i], nextKnown[i] = regs[i], known[i]
		case ruleOffset:
			next[i], nextKnown[i] = mem.read(uint32(int64(cfa) + rule.off))
		case ruleValOffset:
			next[i], nextKnown[i] = uint32(int64(cfa)+rule.off), true
		case ruleRegister:
			next[i], nextKnown[i] = regs[rule.reg], known[rule.reg]
		}
	}
	next[13], nextKnown[13] = cfa, true
	raReg := fd.cie.raReg
	if raReg >= numRegs || !nextKnown[raReg] {
		return unwound{}, false
	}
	method := MethodCFI
	if row.regs[raReg].kind == ruleSame {
		if !first {
			return unwound{}, false // a caller's LR was overwritten by its call: only the stack could tell
		}
		method = MethodLR // a leaf: the return address never left the LR register
	}
	ra, ok := ix.codeAddress(next[raReg])
	if !ok || cfa < regs[13] || (cfa == regs[13] && uint64(ra) == pc+2) {
		return unwound{}, false
	}
	next[15], nextKnown[15] = ra, true
	*regs, *known = next, nextKnown
	return unwound{ra: ra, method: method}, true
}
