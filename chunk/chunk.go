// Package chunk is the ferrite-sdk wire format: frames with a CRC-16, the seven payload types, stream decoding
// with re-sync, AES-128-CCM as the SDK encrypts, the SDK's RLE compression and trace reassembly.
//
// It does no I/O and keeps the hot path (DecodeStream, CRC16, ParseMetrics) free of per-chunk allocations, so that
// ingest, the load generator and device simulators can all share one implementation of the format.
package chunk

import (
	"encoding/binary"
	"fmt"
)

// Frame layout constants (spec §1.1, §1.4), exported because callers size buffers and validate input with them.
const (
	Magic         = 0xEC                 // first byte of every frame; re-sync scans for it
	Version       = 0x01                 // the only version ferrite speaks
	HeaderSize    = 8                    // magic, version, type, flags, payload_len u16, sequence_id u16
	CRCSize       = 2                    // CRC16 over header and payload, little-endian
	MinSize       = HeaderSize + CRCSize // a frame with an empty payload
	MaxSDKPayload = 248                  // the largest payload an SDK device (or its gateway) ever sends
	maxPayload    = 1<<16 - 1            // what payload_len can express
	maxFrame      = MinSize + maxPayload // the largest frame the format allows
)

// Type is a chunk type: it says how to parse the payload.
type Type uint8

// Chunk types (spec §1.5).
const (
	TypeHeartbeat     Type = 0x01
	TypeMetrics       Type = 0x02
	TypeFaultRecord   Type = 0x03
	TypeTraceFragment Type = 0x04
	TypeRebootReason  Type = 0x05
	TypeDeviceInfo    Type = 0x06
	TypeOtaRequest    Type = 0x07
)

var typeNames = [...]string{"", "Heartbeat", "Metrics", "FaultRecord", "TraceFragment", "RebootReason",
	"DeviceInfo", "OtaRequest"}

// String returns ferrite's (Rust Debug) name for the type, because ferrite's error messages, such as
// "failed to decrypt chunk seq=1 type=Heartbeat", embed it and lodestone reproduces them.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Valid reports whether t is one of the seven known types; ferrite-server rejects a frame of any other type.
func (t Type) Valid() bool { return t >= TypeHeartbeat && t <= TypeOtaRequest }

// Flags is the frame's flag byte. Reserved bits 4-7 are carried through unchanged, as ferrite ignores them.
type Flags uint8

// Flag bits (spec §1.3).
const (
	FlagLast       Flags = 0x01 // final chunk of a Metrics or Trace series, and set on every single-chunk type
	FlagFragment   Flags = 0x02 // defined but never set by any ferrite encoder
	FlagEncrypted  Flags = 0x04 // payload is nonce || AES-128-CCM ciphertext || tag; see Cipher
	FlagCompressed Flags = 0x08 // payload is original_len || RLE data; see Decompress
)

// Chunk is one frame, the unit devices send and the server stores. A decoded chunk's Payload aliases the input
// buffer (decoding copies nothing), so copy it before the buffer is reused.
type Chunk struct {
	Type    Type
	Flags   Flags
	Seq     uint16 // per-boot counter; only used in error messages
	Payload []byte
}

// Size is the encoded length, so callers can size a buffer before AppendEncode.
func (c Chunk) Size() int { return HeaderSize + len(c.Payload) + CRCSize }

// AppendEncode appends the frame (header with payload_len = len(Payload), payload, CRC little-endian) to dst,
// letting a load generator build a whole body in one buffer. A payload over 65535 bytes cannot be framed and
// panics, as it is a bug in the caller.
func (c Chunk) AppendEncode(dst []byte) []byte {
	if len(c.Payload) > maxPayload {
		panic(fmt.Sprintf("chunk: payload of %d bytes does not fit payload_len", len(c.Payload)))
	}
	start := len(dst)
	dst = append(dst, Magic, Version, byte(c.Type), byte(c.Flags))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(c.Payload)))
	dst = binary.LittleEndian.AppendUint16(dst, c.Seq)
	dst = append(dst, c.Payload...)
	return binary.LittleEndian.AppendUint16(dst, CRC16(dst[start:]))
}

// Encode returns the frame in a new slice of exactly Size bytes.
func (c Chunk) Encode() []byte { return c.AppendEncode(make([]byte, 0, c.Size())) }
