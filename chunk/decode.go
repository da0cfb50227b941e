package chunk

import "encoding/binary"

// Decode decodes exactly one frame at the start of b and returns it and the number of bytes it used. It is
// strict like ferrite-server: any fault is an error and nothing is skipped. Checks run in ferrite's order: ErrShort
// (fewer than MinSize bytes), ErrMagic, ErrVersion, ErrType, ErrTruncated (payload_len runs past the end of b),
// ErrCRC. Any payload_len up to 65535 is accepted, as ferrite-server does. The payload aliases b.
func Decode(b []byte) (Chunk, int, error) {
	n, f := checkHeader(b)
	if f.kind == nil {
		f = checkCRC(b, n, CRC16(b[:HeaderSize+n]))
	}
	if f.kind != nil {
		return Chunk{}, 0, f.err()
	}
	return chunkAt(b, n), HeaderSize + n + CRCSize, nil
}

// checkHeader validates everything but the CRC of the frame at the start of b and returns its payload length.
// Checking the cheap header fields first means a false magic byte in garbage is usually rejected before any
// CRC work.
func checkHeader(b []byte) (n int, f failure) {
	switch {
	case len(b) < MinSize:
		return 0, failure{kind: ErrShort, a: len(b)}
	case b[0] != Magic:
		return 0, failure{kind: ErrMagic, a: int(b[0])}
	case b[1] != Version:
		return 0, failure{kind: ErrVersion, a: int(b[1])}
	case !Type(b[2]).Valid():
		return 0, failure{kind: ErrType, a: int(b[2])}
	}
	n = int(binary.LittleEndian.Uint16(b[4:]))
	if len(b) < HeaderSize+n+CRCSize {
		return 0, failure{kind: ErrTruncated, a: n, b: len(b)}
	}
	return n, failure{}
}

// checkCRC compares the CRC stored after an n-byte payload with computed, the CRC of header and payload.
func checkCRC(b []byte, n int, computed uint16) failure {
	if stored := binary.LittleEndian.Uint16(b[HeaderSize+n:]); stored != computed {
		return failure{kind: ErrCRC, a: int(stored), b: int(computed)}
	}
	return failure{}
}

// chunkAt builds the Chunk of a checked frame. The payload's capacity is clipped so that appending to it can
// never overwrite the CRC or the next frame in the caller's buffer.
func chunkAt(b []byte, n int) Chunk {
	return Chunk{Type: Type(b[2]), Flags: Flags(b[3]), Seq: binary.LittleEndian.Uint16(b[6:]),
		Payload: b[HeaderSize : HeaderSize+n : HeaderSize+n]}
}
