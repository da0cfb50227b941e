// Package metricblock encodes the samples of one metric series (one device, one key) into a compact block, the way
// Gorilla and Prometheus do: times, row ids and device ticks as delta-of-delta integers, values as the XOR of each
// float with the previous one. A series sampled at a steady rate with slowly moving values costs a few bits per
// sample, against the tens of bytes of a table row and its index entries.
//
// A block keeps everything a stored sample has (its row id, time, ticks, type, value, histogram maximum and the
// raw bytes of an unknown type), so a store that seals rows into blocks answers every read as before.
package metricblock

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Point is one stored sample. Value is NaN for a missing value (SQLite keeps NaN as NULL) and for types without
// one; Max is read only for histograms (type 2) and Raw only for unknown types (above 2).
type Point struct {
	ID    int64
	At    int64 // Unix milliseconds
	Ticks int64 // the device clock, as stored (a uint64 in an int64)
	Type  uint8
	Value float64
	Max   float64
	Raw   []byte
}

// Metric types with a value, as in lodestone.MetricType.
const (
	typeCounter   = 0
	typeGauge     = 1
	typeHistogram = 2
)

// version leads every block, so a later format can be told apart.
const version = 1

// MaxRaw bounds an unknown type's raw bytes in a block (a chunk carries far fewer).
const MaxRaw = 1<<16 - 1

// Encode returns the block of pts, in their order (a store passes them by time, then row id).
func Encode(pts []Point) ([]byte, error) {
	e := NewEncoder()
	for i := range pts {
		if err := e.Add(&pts[i]); err != nil {
			return nil, err
		}
	}
	return e.Bytes(), nil
}

// An Encoder builds a block a sample at a time, so a store can end a block at a size that packs its pages well.
type Encoder struct {
	e encoder
	n int
}

// NewEncoder starts an empty block.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.e.w.bits(version, 8)
	e.e.w.bits(0, 32) // the count, set by Bytes
	return e
}

// Add appends a sample. After an error the block is unusable.
func (e *Encoder) Add(p *Point) error {
	if err := e.e.add(p); err != nil {
		return err
	}
	e.n++
	return nil
}

// Len is the size of the block so far, in bytes.
func (e *Encoder) Len() int { return len(e.e.w.b) }

// Count is the number of samples added.
func (e *Encoder) Count() int { return e.n }

// Bytes returns the block. The encoder must not be used afterwards.
func (e *Encoder) Bytes() []byte {
	b := e.e.w.b
	b[1], b[2], b[3], b[4] = byte(e.n>>24), byte(e.n>>16), byte(e.n>>8), byte(e.n)
	return b
}

// Count is the number of samples in a block, read from its header.
func Count(block []byte) (int, error) {
	r := bitReader{b: block}
	if v, err := r.bits(8); err != nil || v != version {
		return 0, fmt.Errorf("metricblock: not a version %d block", version)
	}
	n, err := r.bits(32)
	return int(n), err
}

// Decode returns the samples of a block, in the order they were encoded.
func Decode(block []byte) ([]Point, error) { return DecodeBefore(block, math.MaxInt64) }

// DecodeBefore returns the samples of a block, in the order they were encoded, up to the first at or after
// time to: a store encodes samples by time, so a read of a range stops decoding where the range ends.
func DecodeBefore(block []byte, to int64) ([]Point, error) {
	n, err := Count(block)
	if err != nil {
		return nil, err
	}
	if n > len(block)*8 { // every sample takes at least one bit: a corrupt count must not allocate gigabytes
		return nil, errShort
	}
	d := decoder{r: bitReader{b: block, pos: 40}}
	// A range often needs only a block's first points (a series' start inside a block): grow as they are read
	// rather than allocate the whole count up front.
	out := make([]Point, 0, min(n, 64))
	for i := range n {
		var p Point
		if err := d.next(&p); err != nil {
			return nil, fmt.Errorf("metricblock: sample %d of %d: %w", i, n, err)
		}
		if p.At >= to {
			break
		}
		out = append(out, p)
	}
	return out, nil
}

type encoder struct {
	w             bitWriter
	id, at, ticks intState
	typ           uint8
	value, max    floatState
	count         intState // counters that hold whole numbers
	initialized   bool
}

func (e *encoder) add(p *Point) error {
	e.id.put(&e.w, p.ID)
	e.at.put(&e.w, p.At)
	e.ticks.put(&e.w, p.Ticks)
	if e.initialized && p.Type == e.typ {
		e.w.bit(false)
	} else {
		e.w.bit(true)
		e.w.bits(uint64(p.Type), 8)
		e.typ, e.initialized = p.Type, true
	}
	switch p.Type {
	case typeCounter:
		// A counter grows by steady steps: as an integer its delta-of-delta is a bit or a few, where the XOR of
		// two floats is tens. A counter that is not a whole number (imported, say) falls back to the XOR.
		if v := p.Value; v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			e.w.bit(false)
			e.count.put(&e.w, int64(v))
		} else {
			e.w.bit(true)
			e.value.put(&e.w, p.Value)
		}
	case typeGauge:
		e.value.put(&e.w, p.Value)
	case typeHistogram:
		e.value.put(&e.w, p.Value)
		e.max.put(&e.w, p.Max)
	default:
		if len(p.Raw) > MaxRaw {
			return fmt.Errorf("metricblock: raw value of %d bytes, at most %d", len(p.Raw), MaxRaw)
		}
		e.w.bits(uint64(len(p.Raw)), 16)
		for _, c := range p.Raw {
			e.w.bits(uint64(c), 8)
		}
	}
	return nil
}

type decoder struct {
	r             bitReader
	id, at, ticks intState
	typ           uint8
	value, max    floatState
	count         intState
}

func (d *decoder) next(p *Point) error {
	var err error
	if p.ID, err = d.id.get(&d.r); err != nil {
		return err
	}
	if p.At, err = d.at.get(&d.r); err != nil {
		return err
	}
	if p.Ticks, err = d.ticks.get(&d.r); err != nil {
		return err
	}
	changed, err := d.r.bit()
	if err != nil {
		return err
	}
	if changed {
		t, err := d.r.bits(8)
		if err != nil {
			return err
		}
		d.typ = uint8(t)
	}
	p.Type, p.Value, p.Max = d.typ, math.NaN(), 0
	switch p.Type {
	case typeCounter:
		var float bool
		if float, err = d.r.bit(); err != nil {
			return err
		}
		if float {
			p.Value, err = d.value.get(&d.r)
		} else {
			var v int64
			v, err = d.count.get(&d.r)
			p.Value = float64(v)
		}
	case typeGauge:
		p.Value, err = d.value.get(&d.r)
	case typeHistogram:
		if p.Value, err = d.value.get(&d.r); err == nil {
			p.Max, err = d.max.get(&d.r)
		}
	default:
		var n uint64
		if n, err = d.r.bits(16); err != nil {
			return err
		}
		if d.r.pos+int(n)*8 > len(d.r.b)*8 {
			return errShort
		}
		p.Raw = make([]byte, n)
		for i := range p.Raw {
			c, _ := d.r.bits(8)
			p.Raw[i] = byte(c)
		}
	}
	return err
}

// intState encodes an integer column as the difference of successive differences: a steady rate costs one bit.
type intState struct{ prev, delta int64 }

// dodWidths are the signed widths a delta-of-delta is written in, after a unary prefix of its index (0 bits: the
// delta did not change); a wider one is written whole in 64 bits.
var dodWidths = [...]int{0, 7, 12, 20, 32}

func (s *intState) put(w *bitWriter, v int64) {
	delta := v - s.prev
	dod := delta - s.delta
	s.prev, s.delta = v, delta
	for i, n := range dodWidths {
		if n == 0 && dod == 0 || n > 0 && dod >= -(1<<(n-1)) && dod < 1<<(n-1) {
			for range i {
				w.bit(true)
			}
			w.bit(false)
			w.bits(uint64(dod), n)
			return
		}
	}
	for range dodWidths {
		w.bit(true)
	}
	w.bits(uint64(dod), 64)
}

func (s *intState) get(r *bitReader) (int64, error) {
	i, err := r.prefix(len(dodWidths))
	if err != nil {
		return 0, err
	}
	n := 64
	if i < len(dodWidths) {
		n = dodWidths[i]
	}
	u, err := r.bits(n)
	if err != nil {
		return 0, err
	}
	dod := int64(u)
	if n > 0 && n < 64 {
		dod = int64(u<<(64-n)) >> (64 - n) // sign-extend
	}
	s.delta += dod
	s.prev += s.delta
	return s.prev, nil
}

// floatState encodes a float column as the XOR with the previous value (Gorilla): an unchanged value costs one
// bit, and a value near the last one only the bits that differ.
type floatState struct {
	prev              uint64
	leading, trailing int // of the last window written, once started
	started           bool
}

func (s *floatState) put(w *bitWriter, f float64) {
	v := math.Float64bits(f)
	if math.IsNaN(f) {
		v = math.Float64bits(math.NaN()) // one NaN: a store keeps no NaN payloads
	}
	x := v ^ s.prev
	s.prev = v
	if x == 0 {
		w.bit(false)
		return
	}
	w.bit(true)
	lead, trail := min(bits.LeadingZeros64(x), 31), bits.TrailingZeros64(x)
	if s.started && lead >= s.leading && trail >= s.trailing {
		w.bit(false)
		w.bits(x>>s.trailing, 64-s.leading-s.trailing)
		return
	}
	s.started, s.leading, s.trailing = true, lead, trail
	w.bit(true)
	w.bits(uint64(lead), 5)
	sig := 64 - lead - trail
	w.bits(uint64(sig&63), 6) // 64 significant bits are written as 0
	w.bits(x>>trail, sig)
}

func (s *floatState) get(r *bitReader) (float64, error) {
	changed, err := r.bit()
	if err != nil {
		return 0, err
	}
	if !changed {
		return math.Float64frombits(s.prev), nil
	}
	fresh, err := r.bit()
	if err != nil {
		return 0, err
	}
	if fresh {
		lead, err := r.bits(5)
		if err != nil {
			return 0, err
		}
		sig, err := r.bits(6)
		if err != nil {
			return 0, err
		}
		if sig == 0 {
			sig = 64
		}
		if int(lead)+int(sig) > 64 {
			return 0, errors.New("metricblock: bad float window")
		}
		s.started, s.leading, s.trailing = true, int(lead), 64-int(lead)-int(sig)
	} else if !s.started {
		return 0, errors.New("metricblock: float window used before it is set")
	}
	x, err := r.bits(64 - s.leading - s.trailing)
	if err != nil {
		return 0, err
	}
	s.prev ^= x << s.trailing
	return math.Float64frombits(s.prev), nil
}
