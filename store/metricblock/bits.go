package metricblock

import "errors"

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

// bitReader reads what bitWriter wrote.
type bitReader struct {
	b   []byte
	pos int // next bit
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
	var v uint64
	for n > 0 {
		off := r.pos & 7
		take := min(n, 8-off)
		chunk := uint64(r.b[r.pos>>3]>>(8-off-take)) & (1<<take - 1)
		v = v<<take | chunk
		r.pos += take
		n -= take
	}
	return v, nil
}

// prefix reads up to max one-bits and the zero after them, returning how many ones it read: the unary prefix that
// selects an encoding width.
func (r *bitReader) prefix(max int) (int, error) {
	for i := 0; i < max; i++ {
		b, err := r.bit()
		if err != nil {
			return 0, err
		}
		if !b {
			return i, nil
		}
	}
	return max, nil
}
