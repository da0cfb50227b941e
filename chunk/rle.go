package chunk

import (
	"encoding/binary"
	"fmt"
)

// rleMarker starts a run triple: marker, byte, count. A literal 0xFF must therefore be written as a triple.
const rleMarker = 0xFF

// RLECompress appends the SDK's run-length encoding of src to dst (spec §1.9), byte for byte what a device's
// CompressedTransport produces: runs of three or more equal bytes, and every run of 0xFF, become FF <byte> <count>;
// runs longer than 255 are split; other bytes are literal.
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

// RLEDecompress appends the decoding of src to dst. Producing more than maxLen bytes, which bounds what a hostile
// payload can make the server allocate, or a marker without its byte and count, is an ErrDecompress; dst then
// holds the output so far. A count of zero produces nothing, as in the SDK.
func RLEDecompress(dst, src []byte, maxLen int) ([]byte, error) {
	start := len(dst)
	for i := 0; i < len(src); i++ {
		if src[i] != rleMarker {
			if len(dst)-start >= maxLen {
				return dst, fmt.Errorf("%w: output exceeds %d bytes", ErrDecompress, maxLen)
			}
			dst = append(dst, src[i])
			continue
		}
		if i+2 >= len(src) {
			return dst, fmt.Errorf("%w: run marker at byte %d without byte and count", ErrDecompress, i)
		}
		b, n := src[i+1], int(src[i+2])
		if len(dst)-start+n > maxLen {
			return dst, fmt.Errorf("%w: output exceeds %d bytes", ErrDecompress, maxLen)
		}
		for range n {
			dst = append(dst, b)
		}
		i += 2
	}
	return dst, nil
}

// CompressChunk compresses ch as the SDK's CompressedTransport does, so simulators send what devices send: the
// payload becomes original_len u16 || RLE and FlagCompressed is set, but only if the payload is non-empty, its RLE
// form is strictly shorter than it (the 2-byte prefix is not counted, as in the SDK) and the result fits in
// MaxSDKPayload. Otherwise ch is returned unchanged. It reports whether it compressed.
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

// Decompress returns ch with its original payload (a new slice) and FlagCompressed cleared; a chunk without the
// flag is returned unchanged. ferrite-server never decompresses; lodestone does. A payload shorter than the
// 2-byte length prefix, bad RLE data, or a decoded length other than the prefix is an ErrDecompress, and the
// original_len prefix bounds the output.
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
