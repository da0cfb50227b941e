package metricblock

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// series is a device reporting every minute with jitter: ids far apart (other devices write in between), a
// counter of uptime, float32 gauge values as devices send them, now and then a NaN, a histogram, an unknown type.
func series(n int, rng *rand.Rand) []Point {
	pts := make([]Point, n)
	id, at, ticks := int64(1_000_000), int64(1_767_225_600_000), int64(5_000)
	for i := range pts {
		id += 900_000 + rng.Int64N(200_000)
		at += 60_000 + rng.Int64N(400) - 200
		ticks += 60_000
		p := Point{ID: id, At: at, Ticks: ticks, Type: typeGauge, Value: float64(float32(20 + rng.NormFloat64()))}
		switch {
		case i%17 == 3:
			p.Value = math.NaN()
		case i%23 == 5:
			p.Type, p.Value, p.Max = typeHistogram, float64(float32(rng.Float64()*10)), float64(float32(rng.Float64()*100))
		case i%29 == 7:
			p.Type, p.Value, p.Raw = 9, math.NaN(), []byte{byte(i), 0xff, 0}
		case i%31 == 11:
			p.Type, p.Value = typeCounter, float64(i*1024)
		case i%41 == 17: // counters that are not whole numbers, or too large for an int64, take the float path
			p.Type, p.Value = typeCounter, 2.5
		case i%43 == 19:
			p.Type, p.Value = typeCounter, 1e300
		case i%47 == 23:
			p.Type, p.Value = typeCounter, math.NaN()
		case i%37 == 13:
			p.At, p.ID, p.Ticks = math.MaxInt64/3, math.MinInt64+5, -1 // far outside the steady deltas
		}
		pts[i] = p
	}
	return pts
}

func same(a, b *Point) bool {
	eq := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || math.IsNaN(x) && math.IsNaN(y)
	}
	if a.ID != b.ID || a.At != b.At || a.Ticks != b.Ticks || a.Type != b.Type {
		return false
	}
	switch a.Type {
	case typeCounter, typeGauge:
		return eq(a.Value, b.Value)
	case typeHistogram:
		return eq(a.Value, b.Value) && eq(a.Max, b.Max)
	}
	return bytes.Equal(a.Raw, b.Raw) && math.IsNaN(b.Value)
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 120, 1000} {
		pts := series(n, rng)
		b, err := Encode(pts)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := Count(b); err != nil || c != n {
			t.Fatalf("Count = %d, %v; want %d", c, err, n)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("decoded %d samples, want %d", len(got), n)
		}
		for i := range pts {
			if !same(&pts[i], &got[i]) {
				t.Fatalf("n=%d sample %d: got %+v, want %+v", n, i, got[i], pts[i])
			}
		}
	}
}

// TestSize: a steady series of float32 gauges costs a few bytes a sample, row id, time and ticks included.
func TestSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pts := make([]Point, 240)
	id, at := int64(1), int64(1_767_225_600_000)
	for i := range pts {
		id += 1_000_000 + rng.Int64N(1000)
		at += 60_000 + rng.Int64N(50)
		pts[i] = Point{ID: id, At: at, Ticks: at - 1_767_225_000_000, Type: typeGauge,
			Value: float64(float32(20 + 5*math.Sin(float64(i)/50) + rng.NormFloat64()/10))}
	}
	b, err := Encode(pts)
	if err != nil {
		t.Fatal(err)
	}
	if per := float64(len(b)) / float64(len(pts)); per > 9 {
		t.Errorf("%.2f bytes per sample, want at most 9", per)
	}
	steady := make([]Point, 240)
	for i := range steady {
		steady[i] = Point{ID: int64(i), At: int64(i) * 60_000, Ticks: int64(i), Type: typeCounter, Value: 7}
	}
	if b, _ := Encode(steady); len(b) > 5+35+240 {
		t.Errorf("a constant series takes %d bytes, want at most %d", len(b), 5+35+240)
	}
}

func TestRawTooLong(t *testing.T) {
	if _, err := Encode([]Point{{Type: 7, Raw: make([]byte, MaxRaw+1)}}); err == nil {
		t.Fatal("a raw value longer than MaxRaw was encoded")
	}
}

// TestCorrupt: every truncation of a block, and a bad header, is an error, never a panic or a wrong sample count.
func TestCorrupt(t *testing.T) {
	b, err := Encode(series(50, rand.New(rand.NewPCG(5, 6))))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := Decode(b[:i]); err == nil {
			t.Fatalf("a block cut to %d of %d bytes decoded", i, len(b))
		}
	}
	bad := append([]byte{version + 1}, b[1:]...)
	if _, err := Decode(bad); err == nil {
		t.Fatal("a block of another version decoded")
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(series(20, rand.New(rand.NewPCG(7, 8))))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		pts, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(pts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(again)
		if err != nil || len(back) != len(pts) {
			t.Fatalf("re-encoded block: %d samples, %v", len(back), err)
		}
	})
}

// gauges is a block of 240 float32 gauges a minute apart, the shape a store seals.
func gauges() []Point {
	rng := rand.New(rand.NewPCG(9, 10))
	pts := make([]Point, 240)
	id, at := int64(1), int64(1_767_225_600_000)
	for i := range pts {
		id += 1000 + rng.Int64N(20)
		at += 60_000 + rng.Int64N(300)
		pts[i] = Point{ID: id, At: at, Ticks: int64(i) * 60_000, Type: typeGauge,
			Value: float64(float32(20 + rng.NormFloat64()/5))}
	}
	return pts
}

func BenchmarkEncode(b *testing.B) {
	pts := gauges()
	for b.Loop() {
		if _, err := Encode(pts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/point")
}

func BenchmarkDecode(b *testing.B) {
	blk, err := Encode(gauges())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Decode(blk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*240), "ns/point")
	b.ReportMetric(float64(len(blk))/240, "B/point")
}

// TestDecodeBefore: decoding stops at the first sample at or after the time given.
func TestDecodeBefore(t *testing.T) {
	pts := gauges()
	b, err := Encode(pts)
	if err != nil {
		t.Fatal(err)
	}
	cut := pts[len(pts)/3].At
	got, err := DecodeBefore(b, cut)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, p := range pts {
		if p.At < cut {
			want++
		}
	}
	if len(got) != want || (len(got) > 0 && got[len(got)-1].At >= cut) {
		t.Fatalf("decoded %d samples before %d, want %d", len(got), cut, want)
	}
	for i := range got {
		if !same(&got[i], &pts[i]) {
			t.Fatalf("sample %d: %+v, want %+v", i, got[i], pts[i])
		}
	}
}
