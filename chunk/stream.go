package chunk

import (
	"bytes"
	"fmt"
)

// Frame is a chunk found in a body, with where it was, so that errors and tests can point at its bytes.
type Frame struct {
	Chunk
	Offset int // offset of the frame's magic byte in the body
	Len    int // encoded length
}

// BadSpan is a run of body bytes that did not decode. Reporting spans rather than stopping (as ferrite-server
// does) lets one corrupt chunk cost only itself. Err says why decoding failed at Offset, the first position tried.
type BadSpan struct {
	Offset int
	Len    int
	Err    error
}

// Error describes the span for humans; ingest puts it into API responses, e.g.
// "bytes 10-24 (15 bytes): crc mismatch: expected 0xA2F3 (stored), got 0x1B2C (computed)".
func (b BadSpan) Error() string {
	return fmt.Sprintf("bytes %d-%d (%d bytes): %v", b.Offset, b.Offset+b.Len-1, b.Len, b.Err)
}

// Unwrap exposes Err, so errors.Is(span, ErrCRC) works when a span is used as an error.
func (b BadSpan) Unwrap() error { return b.Err }

// DecodeStream decodes a body of concatenated frames with re-sync, so that garbage or a corrupt chunk does not
// cost the chunks after it. At each position it tries Decode; a good frame is appended to frames and decoding
// continues after it; otherwise it skips one byte and rescans from the next Magic byte. Consecutive bytes that
// do not decode merge into one BadSpan. It always runs to the end of the body, so frames and spans together tile
// the body in order. A false frame inside garbage must pass the CRC to be accepted (about 1 in 65536).
//
// Results are appended to frames and bad, so a caller that passes them back with length zero decodes without
// allocating (a BadSpan's error is the one allocation per span). Work is linear in the body size even for
// adversarial bodies; see streamCRC.
func DecodeStream(body []byte, frames []Frame, bad []BadSpan) ([]Frame, []BadSpan) {
	sums := streamCRC{body: body}
	badStart := -1
	var badWhy failure
	for i := 0; i < len(body); {
		b := body[i:]
		n, f := checkHeader(b)
		if f.kind == nil {
			if f = checkCRC(b, n, sums.sum(i, HeaderSize+n)); f.kind != nil {
				sums.failed(HeaderSize + n)
			}
		}
		if f.kind == nil {
			if badStart >= 0 {
				bad = append(bad, BadSpan{Offset: badStart, Len: i - badStart, Err: badWhy.err()})
				badStart = -1
			}
			frames = append(frames, Frame{Chunk: chunkAt(b, n), Offset: i, Len: HeaderSize + n + CRCSize})
			i += HeaderSize + n + CRCSize
			continue
		}
		if badStart < 0 {
			badStart, badWhy = i, f
		}
		if next := bytes.IndexByte(b[1:], Magic); next >= 0 {
			i += 1 + next
		} else {
			i = len(body)
		}
	}
	if badStart >= 0 {
		bad = append(bad, BadSpan{Offset: badStart, Len: len(body) - badStart, Err: badWhy.err()})
	}
	return frames, bad
}

// prefixStride is the distance between saved prefix registers: a range CRC reads at most 2*(prefixStride-1)
// body bytes, and the table costs len(body)/prefixStride*2 bytes (64 KiB for a 2 MiB body).
const prefixStride = 64

// streamCRC computes the CRCs DecodeStream needs. Re-sync tries a frame at every magic byte and a false frame may
// claim up to 64 KiB of payload, so checking every candidate directly is quadratic: a 2 MiB body alternating
// minimal chunks and headers claiming 65535 bytes took 16 s. Once failed candidates have cost more CRC work than
// the body's own size, streamCRC saves the running register every prefixStride bytes and then answers long
// ranges from two prefix registers, using CRC linearity, in constant time. Clean bodies never build the table.
type streamCRC struct {
	body   []byte
	wasted int      // bytes CRC'd for candidates that failed, before the table exists
	marks  []uint16 // marks[k]: the register after body[:k*prefixStride], starting from crcInit
}

// sum returns the CRC of body[i:i+n].
func (s *streamCRC) sum(i, n int) uint16 {
	if s.marks == nil || n <= 4*prefixStride {
		return CRC16(s.body[i : i+n])
	}
	// The register is linear: feeding data D into register r gives Z^len(D)(r) ^ T(D), where Z^k feeds k zero
	// bytes and T(D) is D's own contribution. With P(x) the register after body[:x] and D = body[i:i+n]:
	// P(i+n) = Z^n(P(i)) ^ T(D), and the CRC of D is Z^n(crcInit) ^ T(D) = Z^n(crcInit^P(i)) ^ P(i+n).
	return crcZeros(crcInit^s.prefix(i), n) ^ s.prefix(i+n)
}

// prefix returns the register after body[:x].
func (s *streamCRC) prefix(x int) uint16 {
	k := x / prefixStride
	return crcUpdate(s.marks[k], s.body[k*prefixStride:x])
}

// failed records the cost of a candidate that failed its CRC and builds the prefix table once re-sync has spent
// more than a clean decode of the whole body would.
func (s *streamCRC) failed(n int) {
	if s.marks != nil {
		return
	}
	if s.wasted += n; s.wasted <= len(s.body) {
		return
	}
	s.marks = make([]uint16, len(s.body)/prefixStride+1)
	crc := uint16(crcInit)
	s.marks[0] = crc
	for k := 1; k < len(s.marks); k++ {
		crc = crcUpdate(crc, s.body[(k-1)*prefixStride:k*prefixStride])
		s.marks[k] = crc
	}
}
