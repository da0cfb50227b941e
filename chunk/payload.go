package chunk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// payloadError carries ferrite's exact message while still matching ErrPayload with errors.Is.
type payloadError struct{ msg string }

func (e *payloadError) Error() string        { return e.msg }
func (e *payloadError) Is(target error) bool { return target == ErrPayload }

func payloadErr(format string, args ...any) error {
	return &payloadError{msg: fmt.Sprintf(format, args...)}
}

// Heartbeat closes every session. The SDK sends 24 bytes; the 20-byte legacy form has no device key.
type Heartbeat struct {
	UptimeTicks  uint64
	FreeStack    uint32
	MetricsCount uint32
	FramesLost   uint32
	DeviceKey    uint32
}

// ParseHeartbeat reads a heartbeat payload of at least 20 bytes.
func ParseHeartbeat(p []byte) (Heartbeat, error) {
	if len(p) < 20 {
		return Heartbeat{}, payloadErr("heartbeat payload is %d bytes, need at least 20", len(p))
	}
	h := Heartbeat{UptimeTicks: binary.LittleEndian.Uint64(p), FreeStack: binary.LittleEndian.Uint32(p[8:]),
		MetricsCount: binary.LittleEndian.Uint32(p[12:]), FramesLost: binary.LittleEndian.Uint32(p[16:])}
	if len(p) >= 24 {
		h.DeviceKey = binary.LittleEndian.Uint32(p[20:])
	}
	return h, nil
}

// AppendPayload appends the 24-byte form.
func (h Heartbeat) AppendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.UptimeTicks)
	dst = binary.LittleEndian.AppendUint32(dst, h.FreeStack)
	dst = binary.LittleEndian.AppendUint32(dst, h.MetricsCount)
	dst = binary.LittleEndian.AppendUint32(dst, h.FramesLost)
	return binary.LittleEndian.AppendUint32(dst, h.DeviceKey)
}

// FaultPayloadSize is the size of a FaultRecord payload.
const FaultPayloadSize = 149

// Fault is a Cortex-M fault record: exception frame, callee-saved registers, stack snapshot and fault status
// registers.
type Fault struct {
	Type                              uint8 // 0 HardFault, 1 MemFault, 2 BusFault, 3 UsageFault
	R0, R1, R2, R3, R12, LR, PC, XPSR uint32
	R4_11                             [8]uint32 // r4..r11
	SP                                uint32
	Stack                             [16]uint32
	CFSR, HFSR, MMFAR, BFAR           uint32
}

// ParseFault reads a 149-byte fault record.
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

// AppendPayload appends the 149-byte record.
func (f Fault) AppendPayload(dst []byte) []byte {
	dst = append(dst, f.Type)
	for _, v := range []uint32{f.R0, f.R1, f.R2, f.R3, f.R12, f.LR, f.PC, f.XPSR} {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	for _, v := range f.R4_11 {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	dst = binary.LittleEndian.AppendUint32(dst, f.SP)
	for _, v := range f.Stack {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	for _, v := range []uint32{f.CFSR, f.HFSR, f.MMFAR, f.BFAR} {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	return dst
}

var faultTypeNames = [...]string{"HardFault", "MemFault", "BusFault", "UsageFault"}

// FaultTypeName names a fault type as ferrite's reports do.
func FaultTypeName(t uint8) string {
	if int(t) < len(faultTypeNames) {
		return faultTypeNames[t]
	}
	return "Unknown"
}

// Reboot is a RebootReason payload.
type Reboot struct {
	Reason             uint8
	Extra              uint8
	BootSequence       uint32
	UptimeBeforeReboot uint32
}

// ParseReboot reads a 10-byte reboot reason.
func ParseReboot(p []byte) (Reboot, error) {
	if len(p) < 10 {
		return Reboot{}, payloadErr("failed to parse reboot reason payload")
	}
	return Reboot{Reason: p[0], Extra: p[1], BootSequence: binary.LittleEndian.Uint32(p[2:]),
		UptimeBeforeReboot: binary.LittleEndian.Uint32(p[6:])}, nil
}

// AppendPayload appends the 10-byte payload.
func (r Reboot) AppendPayload(dst []byte) []byte {
	dst = append(dst, r.Reason, r.Extra)
	dst = binary.LittleEndian.AppendUint32(dst, r.BootSequence)
	return binary.LittleEndian.AppendUint32(dst, r.UptimeBeforeReboot)
}

var rebootReasonNames = [...]string{"Unknown", "PowerOnReset", "SoftwareReset", "WatchdogTimeout", "HardFault",
	"MemoryFault", "BusFault", "UsageFault", "AssertFailed", "PinReset", "BrownoutReset", "FirmwareUpdate",
	"UserRequested"}

// RebootReasonName names a reboot reason code.
func RebootReasonName(r uint8) string {
	if int(r) < len(rebootReasonNames) {
		return rebootReasonNames[r]
	}
	return "Unknown"
}

// DeviceInfo starts every session: who the device is and what it runs.
type DeviceInfo struct {
	DeviceID        string
	FirmwareVersion string
	BuildID         uint64
}

// ParseDeviceInfo reads a DeviceInfo payload. Invalid UTF-8 is replaced, as ferrite decodes lossily.
func ParseDeviceInfo(p []byte) (DeviceInfo, error) {
	if len(p) < 1 {
		return DeviceInfo{}, payloadErr("device info payload is empty")
	}
	d := int(p[0])
	if 1+d+1 > len(p) {
		return DeviceInfo{}, payloadErr("device info: device_id length %d overruns payload of %d bytes", d, len(p))
	}
	v := int(p[1+d])
	if 2+d+v > len(p) {
		return DeviceInfo{}, payloadErr("device info: fw_version length %d overruns payload of %d bytes", v, len(p))
	}
	if 2+d+v+8 > len(p) {
		return DeviceInfo{}, payloadErr("device info: %d bytes left for the 8-byte build_id", len(p)-2-d-v)
	}
	return DeviceInfo{
		DeviceID:        strings.ToValidUTF8(string(p[1:1+d]), "\uFFFD"),
		FirmwareVersion: strings.ToValidUTF8(string(p[2+d:2+d+v]), "\uFFFD"),
		BuildID:         binary.LittleEndian.Uint64(p[2+d+v:]),
	}, nil
}

// AppendPayload appends the payload; strings longer than 255 bytes are cut (the SDK cuts at 127).
func (d DeviceInfo) AppendPayload(dst []byte) []byte {
	id, fw := d.DeviceID, d.FirmwareVersion
	id, fw = id[:min(len(id), 255)], fw[:min(len(fw), 255)]
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = append(dst, byte(len(fw)))
	dst = append(dst, fw...)
	return binary.LittleEndian.AppendUint64(dst, d.BuildID)
}

// OtaRequest is a device asking for an update.
type OtaRequest struct {
	BuildID      uint64
	MaxChunkSize uint16
	OtaCapable   uint8
}

// ParseOtaRequest reads a 14-byte OTA request.
func ParseOtaRequest(p []byte) (OtaRequest, error) {
	if len(p) < 14 {
		return OtaRequest{}, payloadErr("failed to parse OTA request payload")
	}
	return OtaRequest{BuildID: binary.LittleEndian.Uint64(p), MaxChunkSize: binary.LittleEndian.Uint16(p[8:]),
		OtaCapable: p[10]}, nil
}

// AppendPayload appends the 14-byte payload (three reserved zero bytes at the end).
func (o OtaRequest) AppendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, o.BuildID)
	dst = binary.LittleEndian.AppendUint16(dst, o.MaxChunkSize)
	return append(dst, o.OtaCapable, 0, 0, 0)
}
