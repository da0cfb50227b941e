package chunk

import "encoding/binary"

// The fixed-size payloads (spec §1.5). Each Parse function accepts what ferrite-server accepts (extra bytes are
// ignored) and each AppendPayload writes exactly what the SDK sends, so tests, simulators and the load generator
// produce real device traffic.

// Heartbeat closes every SDK session and marks the device online. The SDK sends 24 bytes; the 20-byte legacy
// form has no device key.
type Heartbeat struct {
	UptimeTicks  uint64
	FreeStack    uint32 // the SDK always sends 0
	MetricsCount uint32
	FramesLost   uint32
	DeviceKey    uint32 // 0 = not provisioned, and for the 20-byte form
}

// heartbeatLegacySize is the documented heartbeat size, the minimum ferrite accepts; heartbeatSize adds the key.
const (
	heartbeatLegacySize = 20
	heartbeatSize       = 24
)

// ParseHeartbeat reads a heartbeat of at least 20 bytes; 20 to 23 bytes give DeviceKey 0, as in ferrite.
func ParseHeartbeat(p []byte) (Heartbeat, error) {
	if len(p) < heartbeatLegacySize {
		return Heartbeat{}, payloadErr("heartbeat payload is %d bytes, need at least %d", len(p),
			heartbeatLegacySize)
	}
	h := Heartbeat{UptimeTicks: binary.LittleEndian.Uint64(p), FreeStack: binary.LittleEndian.Uint32(p[8:]),
		MetricsCount: binary.LittleEndian.Uint32(p[12:]), FramesLost: binary.LittleEndian.Uint32(p[16:])}
	if len(p) >= heartbeatSize {
		h.DeviceKey = binary.LittleEndian.Uint32(p[20:])
	}
	return h, nil
}

// AppendPayload appends the 24-byte form the SDK sends.
func (h Heartbeat) AppendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.UptimeTicks)
	dst = binary.LittleEndian.AppendUint32(dst, h.FreeStack)
	dst = binary.LittleEndian.AppendUint32(dst, h.MetricsCount)
	dst = binary.LittleEndian.AppendUint32(dst, h.FramesLost)
	return binary.LittleEndian.AppendUint32(dst, h.DeviceKey)
}

// Reboot is a RebootReason payload: why the device last restarted, sent once per boot.
type Reboot struct {
	Reason             uint8 // see RebootReasonName
	Extra              uint8 // the SDK always sends 0
	BootSequence       uint32
	UptimeBeforeReboot uint32 // the SDK always sends 0
}

const rebootSize = 10

// ParseReboot reads a reboot reason. A payload under 10 bytes gives ferrite's exact message "failed to parse
// reboot reason payload" (matching ErrPayload).
func ParseReboot(p []byte) (Reboot, error) {
	if len(p) < rebootSize {
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

// RebootReasonName names a reboot reason code as the SDK's enum does ("Unknown" for codes it does not define),
// so every package shows the same words.
func RebootReasonName(r uint8) string {
	if int(r) < len(rebootReasonNames) {
		return rebootReasonNames[r]
	}
	return "Unknown"
}

// DeviceInfo starts every SDK session: who the device is and what it runs. Ingest attributes the other chunks of
// a body to the last DeviceInfo before them.
type DeviceInfo struct {
	DeviceID        string
	FirmwareVersion string
	BuildID         uint64
}

// ParseDeviceInfo reads a DeviceInfo payload. Where ferrite silently ignores a malformed one, this says why
// (ErrPayload), e.g. "device info: device_id length 40 overruns payload of 12 bytes". Invalid UTF-8 is replaced
// with U+FFFD exactly as ferrite's lossy decoding does.
func ParseDeviceInfo(p []byte) (DeviceInfo, error) {
	if len(p) == 0 {
		return DeviceInfo{}, payloadErr("device info: payload is empty")
	}
	d := int(p[0])
	if 1+d+1 > len(p) {
		return DeviceInfo{}, payloadErr("device info: device_id length %d overruns payload of %d bytes", d, len(p))
	}
	v := int(p[1+d])
	if 2+d+v > len(p) {
		return DeviceInfo{}, payloadErr("device info: firmware_version length %d overruns payload of %d bytes", v,
			len(p))
	}
	if rest := len(p) - 2 - d - v; rest < 8 {
		return DeviceInfo{}, payloadErr("device info: %d bytes left for the 8-byte build_id", rest)
	}
	return DeviceInfo{
		DeviceID:        lossyString(p[1 : 1+d]),
		FirmwareVersion: lossyString(p[2+d : 2+d+v]),
		BuildID:         binary.LittleEndian.Uint64(p[2+d+v:]),
	}, nil
}

// AppendPayload appends the payload. Strings longer than 255 bytes are cut to fit their length byte (the SDK
// itself cuts at 127).
func (d DeviceInfo) AppendPayload(dst []byte) []byte {
	dst = appendShortString(dst, d.DeviceID)
	dst = appendShortString(dst, d.FirmwareVersion)
	return binary.LittleEndian.AppendUint64(dst, d.BuildID)
}

// OtaRequest is a device reporting its build and asking whether an update exists (device to server).
type OtaRequest struct {
	BuildID      uint64 // the build the device runs
	MaxChunkSize uint16
	OtaCapable   uint8 // the SDK sends 1
}

const otaRequestSize = 14

// ParseOtaRequest reads an OTA request. A payload under 14 bytes gives ferrite's exact message "failed to parse
// OTA request payload" (matching ErrPayload).
func ParseOtaRequest(p []byte) (OtaRequest, error) {
	if len(p) < otaRequestSize {
		return OtaRequest{}, payloadErr("failed to parse OTA request payload")
	}
	return OtaRequest{BuildID: binary.LittleEndian.Uint64(p), MaxChunkSize: binary.LittleEndian.Uint16(p[8:]),
		OtaCapable: p[10]}, nil
}

// AppendPayload appends the 14-byte payload, ending in three reserved zero bytes.
func (o OtaRequest) AppendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, o.BuildID)
	dst = binary.LittleEndian.AppendUint16(dst, o.MaxChunkSize)
	return append(dst, o.OtaCapable, 0, 0, 0)
}

// appendShortString appends a length byte and at most 255 bytes of s.
func appendShortString(dst []byte, s string) []byte {
	s = s[:min(len(s), 255)]
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}
