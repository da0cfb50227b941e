package chunk

import (
	"bytes"
	"fmt"
)

// Frame is a chunk found in a body, with where it was.
type Frame struct {
	Chunk
	Offset int // offset of the magic byte
	Len    int // encoded length
}

// BadSpan is a run of bytes that did not decode. Err says why decoding failed at Offset.
type BadSpan struct {
	Offset int
	Len    int
	Err    error
}

// Error describes the span for API responses.
func (b BadSpan) Error() string {
	return fmt.Sprintf("bytes %d-%d (%d bytes): %v", b.Offset, b.Offset+b.Len-1, b.Len, b.Err)
}

// DecodeStream decodes a body of concatenated chunks with re-sync: where a chunk fails to decode it skips one
// byte, scans to the next magic byte and tries again, to the end of the body. Consecutive undecodable bytes form
// one BadSpan. Frames and spans are appended to the given slices so callers can reuse them.
func DecodeStream(body []byte, frames []Frame, bad []BadSpan) ([]Frame, []BadSpan) {
	badStart := -1
	var badErr error
	closeBad := func(end int) {
		if badStart >= 0 {
			bad = append(bad, BadSpan{Offset: badStart, Len: end - badStart, Err: badErr})
			badStart = -1
		}
	}
	for i := 0; i < len(body); {
		c, n, err := Decode(body[i:])
		if err == nil {
			closeBad(i)
			frames = append(frames, Frame{Chunk: c, Offset: i, Len: n})
			i += n
			continue
		}
		if badStart < 0 {
			badStart, badErr = i, err
		}
		next := bytes.IndexByte(body[i+1:], Magic)
		if next < 0 {
			i = len(body)
		} else {
			i += 1 + next
		}
	}
	closeBad(len(body))
	return frames, bad
}
