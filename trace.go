package lodestone

import (
	"bytes"
	"fmt"
	"sort"
)

// MaxTraceSize bounds a reassembled trace buffer; device trace buffers are a few KiB.
const MaxTraceSize = 1 << 20

// AssembleTrace places fragments by byte offset and returns the contiguous buffer. Repeated fragments with the
// same bytes are tolerated (devices resend after a failed upload); a gap, conflicting bytes or a buffer over max
// are errors.
func AssembleTrace(frags []TraceFragment, max int) ([]byte, error) {
	sorted := make([]TraceFragment, len(frags))
	copy(sorted, frags)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Offset < sorted[j].Offset })
	var out []byte
	for _, f := range sorted {
		end := f.Offset + uint64(len(f.Data))
		if end > uint64(max) {
			return nil, fmt.Errorf("trace exceeds %d bytes", max)
		}
		switch {
		case f.Offset > uint64(len(out)):
			return nil, fmt.Errorf("trace gap: bytes %d-%d missing", len(out), f.Offset-1)
		case end <= uint64(len(out)):
			if !bytes.Equal(out[f.Offset:end], f.Data) {
				return nil, fmt.Errorf("trace fragments disagree at offset %d", f.Offset)
			}
		default:
			overlap := uint64(len(out)) - f.Offset
			if !bytes.Equal(out[f.Offset:], f.Data[:overlap]) {
				return nil, fmt.Errorf("trace fragments disagree at offset %d", f.Offset)
			}
			out = append(out, f.Data[overlap:]...)
		}
	}
	return out, nil
}
