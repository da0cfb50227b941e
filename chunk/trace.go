package chunk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// TraceFragment is one piece of a device's trace buffer at a byte offset (type 0x04). Fragments may arrive out of
// order or repeated, so they carry their offset and Reassemble puts them back together.
type TraceFragment struct {
	Offset uint64 // relative to the start of this upload's trace data
	Data   []byte
}

// ParseTraceFragment reads the 8-byte offset and the data after it; a payload under 8 bytes is an ErrPayload.
// Data aliases p, like a decoded chunk's payload.
func ParseTraceFragment(p []byte) (TraceFragment, error) {
	if len(p) < 8 {
		return TraceFragment{}, payloadErr("trace fragment payload is %d bytes, need at least 8", len(p))
	}
	return TraceFragment{Offset: binary.LittleEndian.Uint64(p), Data: p[8:]}, nil
}

// AppendPayload appends the offset and data.
func (t TraceFragment) AppendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, t.Offset)
	return append(dst, t.Data...)
}

// Reassemble orders fragments by offset and joins them into the trace buffer they were cut from. Repeats of the
// same bytes (a device resending after a failed upload) are tolerated; a gap, overlapping fragments that disagree,
// or an end beyond maxLen bytes is an ErrTrace, since guessing would store a corrupt trace. frags is not
// modified, and the result never aliases it.
func Reassemble(frags []TraceFragment, maxLen int) ([]byte, error) {
	sorted := slices.Clone(frags)
	slices.SortStableFunc(sorted, func(a, b TraceFragment) int { return cmp.Compare(a.Offset, b.Offset) })
	limit := uint64(max(maxLen, 0))
	var out []byte
	for _, f := range sorted {
		have := uint64(len(out))
		switch {
		case f.Offset > limit || uint64(len(f.Data)) > limit-f.Offset:
			return nil, fmt.Errorf("%w: fragment at offset %d with %d bytes ends past the %d-byte limit", ErrTrace,
				f.Offset, len(f.Data), maxLen)
		case f.Offset > have:
			return nil, fmt.Errorf("%w: bytes %d-%d missing", ErrTrace, have, f.Offset-1)
		}
		overlap := f.Data[:min(uint64(len(f.Data)), have-f.Offset)]
		if !bytes.Equal(out[f.Offset:f.Offset+uint64(len(overlap))], overlap) {
			return nil, fmt.Errorf("%w: fragments disagree at offset %d", ErrTrace, f.Offset)
		}
		out = append(out, f.Data[len(overlap):]...)
	}
	return out, nil
}
