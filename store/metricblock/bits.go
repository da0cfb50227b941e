package metricblock

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// errShort is what a read past the end of a block returns: the block is truncated or not a block at all.
var errShort = errors.New("metricblock: block ends early")

// bitWriter appends bits most significant first.
type bitWriter struct {
	b     []byte
	count uint8 // free bits in the last byte
}

func (w *bitWriter) bit(v bool) {
	if w.count == 0 {
		w.b = append(w.b, 0)
		w.count = 8
	}
	w.count--
	if v {
		w.b[len(w.b)-1] |= 1 << w.count
	}
}

// bits writes the low n bits of v (n <= 64).
func (w *bitWriter) bits(v uint64, n int) {
	for n > 0 {
		if w.count == 0 {
			w.b = append(w.b, 0)
			w.count = 8
		}
		take := min(n, int(w.count))
		chunk := byte(v>>(n-take)) & byte(1<<take-1)
		w.count -= uint8(take)
		w.b[len(w.b)-1] |= chunk << w.count
		n -= take
	}
}

// bitReader reads what bitWriter wrote, 64 bits at a time.
type bitReader struct {
	b   []byte
	pos int // next bit
}

// peek returns the bits from pos on, left-aligned; at least 57 of them are valid (zeros past the end).
func (r *bitReader) peek() uint64 {
	i := r.pos >> 3
	var w uint64
	if i+8 <= len(r.b) {
		w = binary.BigEndian.Uint64(r.b[i:])
	} else {
		var buf [8]byte
		copy(buf[:], r.b[i:])
		w = binary.BigEndian.Uint64(buf[:])
	}
	return w << (r.pos & 7)
}

func (r *bitReader) bit() (bool, error) {
	if r.pos >= len(r.b)*8 {
		return false, errShort
	}
	v := r.b[r.pos>>3]&(0x80>>(r.pos&7)) != 0
	r.pos++
	return v, nil
}

// bits reads n bits (n <= 64) as the low bits of the result.
func (r *bitReader) bits(n int) (uint64, error) {
	if r.pos+n > len(r.b)*8 {
		return 0, errShort
	}
	if n > 56 {
		hi, _ := r.bits(32)
		lo, _ := r.bits(n - 32)
		return hi<<(n-32) | lo, nil
	}
	v := r.peek() >> (64 - n) // n == 0 shifts by 64, which is 0
	r.pos += n
	return v, nil
}

// prefix reads up to max one-bits and the zero after them, returning how many ones it read: the unary prefix that
// selects an encoding width (max <= 56).
func (r *bitReader) prefix(max int) (int, error) {
	k := min(bits.LeadingZeros64(^r.peek()), max)
	used := k
	if k < max {
		used++ // the zero that ends it
	}
	if r.pos+used > len(r.b)*8 {
		return 0, errShort
	}
	r.pos += used
	return k, nil
}
