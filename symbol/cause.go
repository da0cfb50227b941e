package symbol

import "fmt"

// Cause is one reason a Cortex-M core gave for a fault, decoded from its fault status registers.
type Cause struct {
	// Name is the status bit's name in the ARMv7-M Architecture Reference Manual, e.g. "PRECISERR".
	Name string
	// Register is the status register holding the bit: MMFSR, BFSR, UFSR (the three parts of CFSR) or HFSR.
	Register string
	// Text describes the cause for people, with the fault address when the core marked it valid.
	Text string
	// Address is MMFAR or BFAR for causes that have one; it is set only when the register's VALID bit is.
	Address      uint32
	AddressValid bool
}

// CFSR and HFSR bits (ARMv7-M ARM B3.2.15-B3.2.16; STKOF is ARMv8-M).
const (
	cfsrIACCVIOL    = 1 << 0
	cfsrDACCVIOL    = 1 << 1
	cfsrMUNSTKERR   = 1 << 3
	cfsrMSTKERR     = 1 << 4
	cfsrMLSPERR     = 1 << 5
	cfsrMMARVALID   = 1 << 7
	cfsrIBUSERR     = 1 << 8
	cfsrPRECISERR   = 1 << 9
	cfsrIMPRECISERR = 1 << 10
	cfsrUNSTKERR    = 1 << 11
	cfsrSTKERR      = 1 << 12
	cfsrLSPERR      = 1 << 13
	cfsrBFARVALID   = 1 << 15
	cfsrUNDEFINSTR  = 1 << 16
	cfsrINVSTATE    = 1 << 17
	cfsrINVPC       = 1 << 18
	cfsrNOCP        = 1 << 19
	cfsrSTKOF       = 1 << 20
	cfsrUNALIGNED   = 1 << 24
	cfsrDIVBYZERO   = 1 << 25

	hfsrVECTTBL  = 1 << 1
	hfsrFORCED   = 1 << 30
	hfsrDEBUGEVT = 1 << 31
)

type causeBit struct {
	reg      uint8 // 0 CFSR, 1 HFSR
	bit      uint32
	name     string
	register string
	text     string
	address  uint8 // 0 none, 1 MMFAR, 2 BFAR: appended as " at 0x..." when valid
}

// causeTable lists the causes in the order they are reported: the specific configurable-fault causes first,
// then what the HardFault status adds.
var causeTable = []causeBit{
	{0, cfsrIACCVIOL, "IACCVIOL", "MMFSR", "instruction access violation (execute from a protected or execute-never region)", 0},
	{0, cfsrDACCVIOL, "DACCVIOL", "MMFSR", "data access violation", 1},
	{0, cfsrMSTKERR, "MSTKERR", "MMFSR", "stack overflow on exception entry (MSTKERR)", 0},
	{0, cfsrMUNSTKERR, "MUNSTKERR", "MMFSR", "memory protection fault while unstacking on exception return (MUNSTKERR)", 0},
	{0, cfsrMLSPERR, "MLSPERR", "MMFSR", "memory protection fault during lazy floating-point state preservation", 0},
	{0, cfsrIBUSERR, "IBUSERR", "BFSR", "instruction bus error (prefetch abort)", 0},
	{0, cfsrPRECISERR, "PRECISERR", "BFSR", "precise data bus error", 2},
	{0, cfsrIMPRECISERR, "IMPRECISERR", "BFSR", "imprecise data bus error (the PC may be past the faulting store)", 0},
	{0, cfsrSTKERR, "STKERR", "BFSR", "stack overflow on exception entry (STKERR)", 0},
	{0, cfsrUNSTKERR, "UNSTKERR", "BFSR", "bus fault while unstacking on exception return (UNSTKERR)", 0},
	{0, cfsrLSPERR, "LSPERR", "BFSR", "bus fault during lazy floating-point state preservation", 0},
	{0, cfsrUNDEFINSTR, "UNDEFINSTR", "UFSR", "undefined instruction", 0},
	{0, cfsrINVSTATE, "INVSTATE", "UFSR", "invalid state: branch to an address without the Thumb bit (bad function pointer)", 0},
	{0, cfsrINVPC, "INVPC", "UFSR", "invalid PC load on exception return (corrupt EXC_RETURN or stack)", 0},
	{0, cfsrNOCP, "NOCP", "UFSR", "coprocessor instruction with the coprocessor disabled or absent (FPU not enabled?)", 0},
	{0, cfsrSTKOF, "STKOF", "UFSR", "stack overflow (stack pointer limit reached)", 0},
	{0, cfsrUNALIGNED, "UNALIGNED", "UFSR", "unaligned memory access", 0},
	{0, cfsrDIVBYZERO, "DIVBYZERO", "UFSR", "divide by zero", 0},
	{1, hfsrVECTTBL, "VECTTBL", "HFSR", "bus fault reading the vector table", 0},
	{1, hfsrFORCED, "FORCED", "HFSR", "forced hard fault (escalated from a configurable fault that could not run)", 0},
	{1, hfsrDEBUGEVT, "DEBUGEVT", "HFSR", "debug event (breakpoint without a debugger attached)", 0},
}

// DecodeFault turns the fault status registers into named causes, most specific first. MMFAR and BFAR are used
// only when their VALID bits (MMARVALID, BFARVALID) are set: otherwise they hold stale values. No cause is
// returned when no bit is set.
func DecodeFault(cfsr, hfsr, mmfar, bfar uint32) []Cause {
	var out []Cause
	for _, c := range causeTable {
		v := cfsr
		if c.reg == 1 {
			v = hfsr
		}
		if v&c.bit == 0 {
			continue
		}
		cause := Cause{Name: c.name, Register: c.register, Text: c.text}
		switch {
		case c.address == 1 && cfsr&cfsrMMARVALID != 0:
			cause.Address, cause.AddressValid = mmfar, true
		case c.address == 2 && cfsr&cfsrBFARVALID != 0:
			cause.Address, cause.AddressValid = bfar, true
		}
		if cause.AddressValid {
			cause.Text = fmt.Sprintf("%s at 0x%08x", c.text, cause.Address)
		}
		out = append(out, cause)
	}
	return out
}
