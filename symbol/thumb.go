package symbol

// isReturnAddress reports whether w, a word found on the stack, looks like a Thumb return address: bit 0 set
// and the instruction just before it a BL or BLX in an executable section. It returns the address with the
// Thumb bit cleared.
func (ix *Index) isReturnAddress(w uint32) (uint64, bool) {
	if w&1 == 0 || w < 4 {
		return 0, false
	}
	ra := uint64(w &^ 1)
	if ix.isCall32(ra-4) || ix.isBLXReg(ra-2) {
		return ra, true
	}
	return 0, false
}

// isCall32 matches the 32-bit Thumb-2 BL (T1) and BLX immediate (T2) encodings at addr:
// first halfword 11110 S imm10, second halfword 11 J1 1 J2 imm11 (BL) or 11 J1 0 J2 imm10H 0 (BLX).
func (ix *Index) isCall32(addr uint64) bool {
	hw1, ok1 := ix.halfword(addr)
	hw2, ok2 := ix.halfword(addr + 2)
	if !ok1 || !ok2 || hw1&0xf800 != 0xf000 {
		return false
	}
	return hw2&0xd000 == 0xd000 || hw2&0xd001 == 0xc000
}

// isBLXReg matches the 16-bit BLX <Rm> encoding at addr: 0100 0111 1 Rm 000.
func (ix *Index) isBLXReg(addr uint64) bool {
	hw, ok := ix.halfword(addr)
	return ok && hw&0xff87 == 0x4780
}
