package chunk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// TraceFragment is one piece of a device trace buffer at a byte offset.
type TraceFragment struct {
	Offset uint64
	Data   []byte
}

// ParseTraceFragment reads an 8-byte offset and the data after it. Data aliases p.
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

// Reassemble orders fragments by offset and joins them. Identical repeats are tolerated; a gap, conflicting bytes
// or more than maxLen bytes are errors.
func Reassemble(frags []TraceFragment, maxLen int) ([]byte, error) {
	sorted := append([]TraceFragment(nil), frags...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Offset < sorted[j].Offset })
	var out []byte
	for _, f := range sorted {
		end := f.Offset + uint64(len(f.Data))
		have := uint64(len(out))
		switch {
		case end > uint64(maxLen):
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTrace, maxLen)
		case f.Offset > have:
			return nil, fmt.Errorf("%w: bytes %d-%d missing", ErrTrace, have, f.Offset-1)
		case end <= have:
			if !bytes.Equal(out[f.Offset:end], f.Data) {
				return nil, fmt.Errorf("%w: fragments disagree at offset %d", ErrTrace, f.Offset)
			}
		default:
			if !bytes.Equal(out[f.Offset:], f.Data[:have-f.Offset]) {
				return nil, fmt.Errorf("%w: fragments disagree at offset %d", ErrTrace, f.Offset)
			}
			out = append(out, f.Data[have-f.Offset:]...)
		}
	}
	return out, nil
}
