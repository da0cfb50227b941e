package chunk

import "encoding/binary"

// FaultPayloadSize is the size of a FaultRecord payload; ferrite rejects anything shorter.
const FaultPayloadSize = 149

// Fault is a Cortex-M fault record (spec §1.5, type 0x03): the hardware exception frame, the callee-saved
// registers, a stack snapshot and the fault status registers. Everything is kept, although ferrite stores only
// part of it, so that symbolication and crash grouping can grow without a format change.
type Fault struct {
	Type                              uint8 // 0 HardFault, 1 MemFault, 2 BusFault, 3 UsageFault; see FaultTypeName
	R0, R1, R2, R3, R12, LR, PC, XPSR uint32
	R4_11                             [8]uint32 // r4..r11
	SP                                uint32
	Stack                             [16]uint32 // words read upwards from SP
	CFSR, HFSR, MMFAR, BFAR           uint32
}

// ParseFault reads a fault record. A payload shorter than FaultPayloadSize gives ferrite's exact message
// "failed to parse fault payload" (matching ErrPayload), which the ingest response repeats; extra bytes are
// ignored, as ferrite does.
func ParseFault(p []byte) (Fault, error) {
	if len(p) < FaultPayloadSize {
		return Fault{}, payloadErr("failed to parse fault payload")
	}
	u := func(off int) uint32 { return binary.LittleEndian.Uint32(p[off:]) }
	f := Fault{Type: p[0], R0: u(1), R1: u(5), R2: u(9), R3: u(13), R12: u(17), LR: u(21), PC: u(25), XPSR: u(29),
		SP: u(65), CFSR: u(133), HFSR: u(137), MMFAR: u(141), BFAR: u(145)}
	for i := range f.R4_11 {
		f.R4_11[i] = u(33 + 4*i)
	}
	for i := range f.Stack {
		f.Stack[i] = u(69 + 4*i)
	}
	return f, nil
}

// AppendPayload appends the 149-byte record, for device simulators and tests.
func (f Fault) AppendPayload(dst []byte) []byte {
	dst = append(dst, f.Type)
	for _, v := range [...]uint32{f.R0, f.R1, f.R2, f.R3, f.R12, f.LR, f.PC, f.XPSR} {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	for _, v := range f.R4_11 {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	dst = binary.LittleEndian.AppendUint32(dst, f.SP)
	for _, v := range f.Stack {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	for _, v := range [...]uint32{f.CFSR, f.HFSR, f.MMFAR, f.BFAR} {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	return dst
}

var faultTypeNames = [...]string{"HardFault", "MemFault", "BusFault", "UsageFault"}

// FaultTypeName names a fault type the way ferrite's reports do ("Unknown" for codes it does not define), so
// every package shows the same words.
func FaultTypeName(t uint8) string {
	if int(t) < len(faultTypeNames) {
		return faultTypeNames[t]
	}
	return "Unknown"
}
