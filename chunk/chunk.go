// Package chunk is the ferrite-sdk wire format: frames with a CRC-16, the seven payload types, stream decoding
// with re-sync, AES-128-CCM as the SDK encrypts, the SDK's RLE compression and trace reassembly. It does no I/O.
package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame layout constants.
const (
	Magic         = 0xEC
	Version       = 0x01
	HeaderSize    = 8
	CRCSize       = 2
	MinSize       = HeaderSize + CRCSize
	MaxSDKPayload = 248
)

// Type is a chunk type.
type Type uint8

// Chunk types.
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

// String returns ferrite's name for the type, the one its error messages use.
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Valid reports whether t is one of the seven known types.
func (t Type) Valid() bool { return t >= TypeHeartbeat && t <= TypeOtaRequest }

// Flags is the chunk flag byte.
type Flags uint8

// Flag bits.
const (
	FlagLast       Flags = 0x01
	FlagFragment   Flags = 0x02
	FlagEncrypted  Flags = 0x04
	FlagCompressed Flags = 0x08
)

// Sentinel errors; errors returned by this package wrap one of them.
var (
	ErrShort      = errors.New("chunk shorter than 10 bytes")
	ErrMagic      = errors.New("bad magic byte")
	ErrVersion    = errors.New("unsupported version")
	ErrType       = errors.New("unknown chunk type")
	ErrTruncated  = errors.New("payload runs past the end")
	ErrCRC        = errors.New("crc mismatch")
	ErrPayload    = errors.New("bad payload")
	ErrDecrypt    = errors.New("decryption failed")
	ErrDecompress = errors.New("decompression failed")
	ErrTrace      = errors.New("bad trace")
	ErrKey        = errors.New("bad key")
)

// Chunk is one frame. A decoded chunk's Payload aliases the input buffer.
type Chunk struct {
	Type    Type
	Flags   Flags
	Seq     uint16
	Payload []byte
}

// Size is the encoded length.
func (c Chunk) Size() int { return HeaderSize + len(c.Payload) + CRCSize }

// AppendEncode appends the encoded chunk (header, payload, CRC little-endian) to dst.
func (c Chunk) AppendEncode(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, Magic, Version, byte(c.Type), byte(c.Flags), 0, 0, 0, 0)
	binary.LittleEndian.PutUint16(dst[start+4:], uint16(len(c.Payload)))
	binary.LittleEndian.PutUint16(dst[start+6:], c.Seq)
	dst = append(dst, c.Payload...)
	return binary.LittleEndian.AppendUint16(dst, CRC16(dst[start:]))
}

// Encode returns the encoded chunk.
func (c Chunk) Encode() []byte { return c.AppendEncode(make([]byte, 0, c.Size())) }

// Decode decodes exactly one chunk at the start of b and returns it and the bytes it used.
func Decode(b []byte) (Chunk, int, error) {
	if len(b) < MinSize {
		return Chunk{}, 0, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if b[0] != Magic {
		return Chunk{}, 0, fmt.Errorf("%w: 0x%02X", ErrMagic, b[0])
	}
	if b[1] != Version {
		return Chunk{}, 0, fmt.Errorf("%w: %d", ErrVersion, b[1])
	}
	t := Type(b[2])
	n := int(binary.LittleEndian.Uint16(b[4:]))
	total := HeaderSize + n + CRCSize
	if len(b) < total {
		return Chunk{}, 0, fmt.Errorf("%w: payload_len %d needs %d bytes, %d left", ErrTruncated, n, total, len(b))
	}
	want := binary.LittleEndian.Uint16(b[HeaderSize+n:])
	if got := CRC16(b[:HeaderSize+n]); got != want {
		return Chunk{}, 0, fmt.Errorf("%w: stored 0x%04X, computed 0x%04X", ErrCRC, want, got)
	}
	if !t.Valid() {
		return Chunk{}, 0, fmt.Errorf("%w: 0x%02X", ErrType, uint8(t))
	}
	return Chunk{Type: t, Flags: Flags(b[3]), Seq: binary.LittleEndian.Uint16(b[6:]),
		Payload: b[HeaderSize : HeaderSize+n : HeaderSize+n]}, total, nil
}
