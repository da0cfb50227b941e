package chunk

import (
	"encoding/binary"
	"fmt"
)

// rleMarker starts a run triple: marker, byte, count.
const rleMarker = 0xFF

// RLECompress appends the SDK's run-length encoding of src to dst: runs of three or more (and every 0xFF byte)
// become FF <byte> <count>, runs longer than 255 are split, other bytes are literal.
func RLECompress(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		b := src[i]
		run := 1
		for i+run < len(src) && src[i+run] == b && run < 255 {
			run++
		}
		if run >= 3 || b == rleMarker {
			dst = append(dst, rleMarker, b, byte(run))
		} else {
			for range run {
				dst = append(dst, b)
			}
		}
		i += run
	}
	return dst
}

// RLEDecompress appends the decoding of src to dst; output beyond max bytes or a marker without its two bytes is
// an error.
func RLEDecompress(dst, src []byte, max int) ([]byte, error) {
	start := len(dst)
	for i := 0; i < len(src); i++ {
		if src[i] != rleMarker {
			if len(dst)-start >= max {
				return dst, fmt.Errorf("%w: output exceeds %d bytes", ErrDecompress, max)
			}
			dst = append(dst, src[i])
			continue
		}
		if i+2 >= len(src) {
			return dst, fmt.Errorf("%w: run marker at byte %d without byte and count", ErrDecompress, i)
		}
		b, n := src[i+1], int(src[i+2])
		if len(dst)-start+n > max {
			return dst, fmt.Errorf("%w: output exceeds %d bytes", ErrDecompress, max)
		}
		for range n {
			dst = append(dst, b)
		}
		i += 2
	}
	return dst, nil
}

// CompressChunk compresses ch as the SDK's CompressedTransport does: only a non-empty payload whose RLE form is
// shorter than it and fits in 248 bytes with the 2-byte length prefix. It reports whether it compressed.
func CompressChunk(ch Chunk) (Chunk, bool) {
	if len(ch.Payload) == 0 {
		return ch, false
	}
	rle := RLECompress(make([]byte, 2, 2+len(ch.Payload)), ch.Payload)
	if len(rle)-2 >= len(ch.Payload) || len(rle) > MaxSDKPayload {
		return ch, false
	}
	binary.LittleEndian.PutUint16(rle, uint16(len(ch.Payload)))
	ch.Payload = rle
	ch.Flags |= FlagCompressed
	return ch, true
}

// Decompress returns ch with its original payload and FlagCompressed cleared; without the flag it returns ch.
func Decompress(ch Chunk) (Chunk, error) {
	if ch.Flags&FlagCompressed == 0 {
		return ch, nil
	}
	if len(ch.Payload) < 2 {
		return ch, fmt.Errorf("%w: payload is %d bytes, too short for the length prefix", ErrDecompress,
			len(ch.Payload))
	}
	want := int(binary.LittleEndian.Uint16(ch.Payload))
	out, err := RLEDecompress(make([]byte, 0, want), ch.Payload[2:], want)
	if err != nil {
		return ch, err
	}
	if len(out) != want {
		return ch, fmt.Errorf("%w: decoded %d bytes, prefix says %d", ErrDecompress, len(out), want)
	}
	ch.Payload = out
	ch.Flags &^= FlagCompressed
	return ch, nil
}
