package symbol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Call frame information from .debug_frame (DWARF 2-5 CIE and FDE records, 32- and 64-bit formats), enough to
// unwind ARM code: the rules for r0-r15 and the CFA. Expressions are not evaluated; a frame that needs one ends
// the CFI walk and stack scanning takes over.

type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	insns     []byte
}

type fde struct {
	lo, hi uint64
	cie    *cie
	insns  []byte
}

type frameTable struct {
	fdes []fde // sorted by lo
}

var errBadCFI = errors.New("symbol: malformed .debug_frame")

type cfiReader struct {
	b   []byte
	off int
	err bool
}

func (r *cfiReader) u8() uint8 {
	if r.off+1 > len(r.b) {
		r.err = true
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *cfiReader) u16() uint16 {
	if r.off+2 > len(r.b) {
		r.err = true
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *cfiReader) u32() uint32 {
	if r.off+4 > len(r.b) {
		r.err = true
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *cfiReader) u64() uint64 {
	if r.off+8 > len(r.b) {
		r.err = true
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *cfiReader) uleb() uint64 {
	var v uint64
	var shift uint
	for {
		c := r.u8()
		if r.err {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *cfiReader) sleb() int64 {
	var v int64
	var shift uint
	var c uint8
	for {
		c = r.u8()
		if r.err {
			return 0
		}
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	return v
}

// skip moves past n bytes, reporting whether they were there.
func (r *cfiReader) skip(n uint64) bool {
	if r.err || n > uint64(len(r.b)-r.off) {
		r.err = true
		return false
	}
	r.off += int(n)
	return true
}

func (r *cfiReader) cstring() string {
	start := r.off
	for r.off < len(r.b) && r.b[r.off] != 0 {
		r.off++
	}
	if r.off >= len(r.b) {
		r.err = true
		return ""
	}
	s := string(r.b[start:r.off])
	r.off++
	return s
}

// parseFrameTable reads every CIE and FDE in a .debug_frame section.
func parseFrameTable(data []byte) (*frameTable, error) {
	t := &frameTable{}
	cies := map[uint64]*cie{}
	type pending struct {
		cieOff uint64
		f      fde
	}
	var fdes []pending
	off := 0
	for off+4 <= len(data) {
		start := off
		r := &cfiReader{b: data, off: off}
		length := uint64(r.u32())
		is64 := false
		if length == 0xffffffff {
			length = r.u64()
			is64 = true
		}
		if length == 0 { // a zero terminator or padding
			off = r.off
			continue
		}
		bodyStart := r.off
		if r.err || length > uint64(len(data)-bodyStart) {
			return nil, errBadCFI
		}
		end := bodyStart + int(length)
		body := &cfiReader{b: data[:end], off: bodyStart}
		var id uint64
		if is64 {
			id = body.u64()
		} else {
			id = uint64(body.u32())
		}
		if (!is64 && id == 0xffffffff) || (is64 && id == ^uint64(0)) {
			c, err := parseCIE(body)
			if err != nil {
				return nil, err
			}
			cies[uint64(start)] = c
		} else {
			lo := uint64(body.u32())
			rng := uint64(body.u32())
			if body.err {
				return nil, errBadCFI
			}
			fdes = append(fdes, pending{cieOff: id, f: fde{lo: lo, hi: lo + rng, insns: data[body.off:end]}})
		}
		off = end
	}
	for _, p := range fdes {
		c := cies[p.cieOff]
		if c == nil || p.f.lo >= p.f.hi {
			continue
		}
		p.f.cie = c
		t.fdes = append(t.fdes, p.f)
	}
	sort.SliceStable(t.fdes, func(i, j int) bool { return t.fdes[i].lo < t.fdes[j].lo })
	return t, nil
}

func parseCIE(r *cfiReader) (*cie, error) {
	version := r.u8()
	aug := r.cstring()
	if version != 1 && version != 3 && version != 4 {
		return nil, fmt.Errorf("symbol: .debug_frame CIE version %d not supported", version)
	}
	if aug != "" {
		// GCC and LLVM write no augmentation in .debug_frame; anything else has unknown data ahead.
		return nil, fmt.Errorf("symbol: .debug_frame CIE augmentation %q not supported", aug)
	}
	if version == 4 {
		if addrSize := r.u8(); addrSize != 4 {
			return nil, fmt.Errorf("symbol: .debug_frame address size %d not supported", addrSize)
		}
		r.u8() // segment selector size
	}
	c := &cie{codeAlign: r.uleb(), dataAlign: r.sleb()}
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if r.err {
		return nil, errBadCFI
	}
	c.insns = r.b[r.off:]
	return c, nil
}

// find returns the FDE covering pc.
func (t *frameTable) find(pc uint64) *fde {
	i := sort.Search(len(t.fdes), func(i int) bool { return t.fdes[i].lo > pc }) - 1
	if i >= 0 && pc < t.fdes[i].hi {
		return &t.fdes[i]
	}
	return nil
}

// Register rules.
const (
	ruleSame       = iota // unchanged from the callee (also the default)
	ruleUndefined         // not recoverable
	ruleOffset            // saved at CFA+off
	ruleValOffset         // value is CFA+off
	ruleRegister          // held in another register
	ruleExpression        // needs a DWARF expression: unsupported
)

type regRule struct {
	kind uint8
	off  int64
	reg  uint8
}

const numRegs = 16 // r0-r15; VFP and other registers are parsed and ignored

type unwindRow struct {
	cfaReg  uint64
	cfaOff  int64
	cfaExpr bool
	regs    [numRegs]regRule
}

// rowAt executes the CIE's and FDE's instructions up to pc.
func (f *fde) rowAt(pc uint64) (unwindRow, error) {
	var row unwindRow
	if err := execCFA(f.cie, f.cie.insns, &row, nil, f.lo, ^uint64(0)); err != nil {
		return row, err
	}
	initial := row
	if err := execCFA(f.cie, f.insns, &row, &initial, f.lo, pc); err != nil {
		return row, err
	}
	return row, nil
}

// execCFA runs call frame instructions starting at location loc, stopping before the first advance past pc.
func execCFA(c *cie, insns []byte, row *unwindRow, initial *unwindRow, loc, pc uint64) error {
	r := &cfiReader{b: insns}
	var stack []unwindRow
	set := func(reg uint64, rule regRule) {
		if reg < numRegs {
			row.regs[reg] = rule
		}
	}
	advance := func(delta uint64) bool {
		loc += delta * c.codeAlign
		return loc <= pc
	}
	for r.off < len(r.b) {
		op := r.u8()
		switch op >> 6 {
		case 1: // DW_CFA_advance_loc
			if !advance(uint64(op & 0x3f)) {
				return nil
			}
			continue
		case 2: // DW_CFA_offset
			set(uint64(op&0x3f), regRule{kind: ruleOffset, off: int64(r.uleb()) * c.dataAlign})
			continue
		case 3: // DW_CFA_restore
			if initial != nil && op&0x3f < numRegs {
				row.regs[op&0x3f] = initial.regs[op&0x3f]
			}
			continue
		}
		switch op {
		case 0x00: // nop
		case 0x01: // set_loc
			loc = uint64(r.u32())
			if loc > pc {
				return nil
			}
		case 0x02:
			if !advance(uint64(r.u8())) {
				return nil
			}
		case 0x03:
			if !advance(uint64(r.u16())) {
				return nil
			}
		case 0x04:
			if !advance(uint64(r.u32())) {
				return nil
			}
		case 0x05: // offset_extended
			reg := r.uleb()
			set(reg, regRule{kind: ruleOffset, off: int64(r.uleb()) * c.dataAlign})
		case 0x06: // restore_extended
			reg := r.uleb()
			if initial != nil && reg < numRegs {
				row.regs[reg] = initial.regs[reg]
			}
		case 0x07: // undefined
			set(r.uleb(), regRule{kind: ruleUndefined})
		case 0x08: // same_value
			set(r.uleb(), regRule{kind: ruleSame})
		case 0x09: // register
			reg, other := r.uleb(), r.uleb()
			if other < numRegs {
				set(reg, regRule{kind: ruleRegister, reg: uint8(other)})
			} else {
				set(reg, regRule{kind: ruleUndefined})
			}
		case 0x0a: // remember_state
			stack = append(stack, *row)
		case 0x0b: // restore_state
			if len(stack) == 0 {
				return errBadCFI
			}
			*row = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		case 0x0c: // def_cfa
			row.cfaReg, row.cfaOff, row.cfaExpr = r.uleb(), int64(r.uleb()), false
		case 0x0d: // def_cfa_register
			row.cfaReg, row.cfaExpr = r.uleb(), false
		case 0x0e: // def_cfa_offset
			row.cfaOff = int64(r.uleb())
		case 0x0f: // def_cfa_expression
			if !r.skip(r.uleb()) {
				return errBadCFI
			}
			row.cfaExpr = true
		case 0x10, 0x16: // expression, val_expression
			reg := r.uleb()
			if !r.skip(r.uleb()) {
				return errBadCFI
			}
			set(reg, regRule{kind: ruleExpression})
		case 0x11: // offset_extended_sf
			reg := r.uleb()
			set(reg, regRule{kind: ruleOffset, off: r.sleb() * c.dataAlign})
		case 0x12: // def_cfa_sf
			row.cfaReg, row.cfaOff, row.cfaExpr = r.uleb(), r.sleb()*c.dataAlign, false
		case 0x13: // def_cfa_offset_sf
			row.cfaOff = r.sleb() * c.dataAlign
		case 0x14: // val_offset
			reg := r.uleb()
			set(reg, regRule{kind: ruleValOffset, off: int64(r.uleb()) * c.dataAlign})
		case 0x15: // val_offset_sf
			reg := r.uleb()
			set(reg, regRule{kind: ruleValOffset, off: r.sleb() * c.dataAlign})
		case 0x2e: // GNU_args_size
			r.uleb()
		case 0x2f: // GNU_negative_offset_extended
			reg := r.uleb()
			set(reg, regRule{kind: ruleOffset, off: -int64(r.uleb()) * c.dataAlign})
		default:
			return fmt.Errorf("symbol: unknown call frame instruction 0x%02x", op)
		}
		if r.err || r.off > len(r.b) {
			return errBadCFI
		}
	}
	return nil
}
