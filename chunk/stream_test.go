package chunk_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// join concatenates byte slices into a new body.
func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// span is the expected shape of a BadSpan.
type span struct {
	offset, len int
	err         error
}

// checkStream decodes body and checks frame offsets and bad spans, plus the invariants every result must have.
func checkStream(t *testing.T, body []byte, wantOffsets []int, wantBad []span) {
	t.Helper()
	frames, bad := chunk.DecodeStream(body, nil, nil)
	coverage(t, body, frames, bad)
	var offsets []int
	for _, f := range frames {
		offsets = append(offsets, f.Offset)
	}
	if !slices.Equal(offsets, wantOffsets) {
		t.Fatalf("frame offsets %v, want %v", offsets, wantOffsets)
	}
	if len(bad) != len(wantBad) {
		t.Fatalf("bad spans %v, want %d", bad, len(wantBad))
	}
	for i, w := range wantBad {
		if bad[i].Offset != w.offset || bad[i].Len != w.len || !errors.Is(bad[i].Err, w.err) {
			t.Fatalf("bad span %d: %v, want offset %d len %d %v", i, bad[i], w.offset, w.len, w.err)
		}
	}
}

func TestV13Resync(t *testing.T) {
	body := vector(t, "v13_batch")
	offsets := []int{0, 36, 56, 134}
	shift := func(d int) []int {
		var out []int
		for _, o := range offsets {
			out = append(out, o+d)
		}
		return out
	}
	t.Run("trailing garbage byte", func(t *testing.T) {
		checkStream(t, join(body, []byte{0x42}), offsets, []span{{168, 1, chunk.ErrShort}})
	})
	t.Run("leading garbage byte", func(t *testing.T) {
		// ferrite-server stops here with 0 chunks; we re-sync.
		checkStream(t, join([]byte{0x00}, body), shift(1), []span{{0, 1, chunk.ErrMagic}})
	})
	t.Run("leading false magic", func(t *testing.T) {
		checkStream(t, join([]byte{chunk.Magic}, body), shift(1), []span{{0, 1, chunk.ErrVersion}})
	})
	t.Run("five garbage bytes between chunks", func(t *testing.T) {
		garbage := []byte{0xEC, 0x01, 0x01, 0x00, 0x77} // includes a plausible header
		b := join(body[:36], garbage, body[36:])
		checkStream(t, b, []int{0, 41, 61, 139}, []span{{36, 5, chunk.ErrTruncated}})
	})
	t.Run("flipped crc byte in the middle chunk", func(t *testing.T) {
		b := bytes.Clone(body)
		b[133] ^= 0x01 // high CRC byte of the Metrics chunk at 56..133
		checkStream(t, b, []int{0, 36, 134}, []span{{56, 78, chunk.ErrCRC}})
	})
	t.Run("unknown type with a valid crc", func(t *testing.T) {
		odd := chunk.Chunk{Type: 0x42, Payload: []byte{1, 2, 3}}.Encode()
		checkStream(t, join(body[:36], odd, body[36:]), []int{0, 49, 69, 147}, []span{{36, 13, chunk.ErrType}})
	})
	t.Run("garbage everywhere", func(t *testing.T) {
		g := []byte("junk")
		b := join(g, body[:36], g, body[36:56], g, body[56:134], g, body[134:], g)
		checkStream(t, b, []int{4, 44, 68, 150}, []span{{0, 4, chunk.ErrMagic}, {40, 4, chunk.ErrMagic},
			{64, 4, chunk.ErrMagic}, {146, 4, chunk.ErrMagic}, {184, 4, chunk.ErrShort}})
	})
}

func TestBadSpanError(t *testing.T) {
	body := vector(t, "v13_batch")
	b := bytes.Clone(body)
	b[133] ^= 0x01
	_, bad := chunk.DecodeStream(b, nil, nil)
	want := "bytes 56-133 (78 bytes): crc mismatch: expected 0xC50A (stored), got 0xC40A (computed)"
	if len(bad) != 1 || bad[0].Error() != want {
		t.Fatalf("%v\nwant %s", bad, want)
	}
	if !errors.Is(bad[0], chunk.ErrCRC) {
		t.Fatal("BadSpan does not unwrap to its cause")
	}
}

func TestDecodeStreamReusesSlices(t *testing.T) {
	body := vector(t, "v13_batch")
	frames, bad := chunk.DecodeStream(body, nil, nil)
	allocs := testing.AllocsPerRun(100, func() {
		frames, bad = chunk.DecodeStream(body, frames[:0], bad[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per clean decode with reused slices", allocs)
	}
	// Results are appended: earlier contents are kept.
	frames, _ = chunk.DecodeStream(body, frames[:1], nil)
	if len(frames) != 5 || frames[0].Offset != 0 || frames[4].Offset != 134 {
		t.Fatalf("%d frames after appending to one", len(frames))
	}
}

// referenceStream is DecodeStream's contract written the slow, obvious way: try Decode at every position.
func referenceStream(body []byte) ([]chunk.Frame, []chunk.BadSpan) {
	var frames []chunk.Frame
	var bad []chunk.BadSpan
	for i := 0; i < len(body); {
		c, n, err := chunk.Decode(body[i:])
		if err == nil {
			frames = append(frames, chunk.Frame{Chunk: c, Offset: i, Len: n})
			i += n
			continue
		}
		if len(bad) > 0 && bad[len(bad)-1].Offset+bad[len(bad)-1].Len == i {
			bad[len(bad)-1].Len++
		} else {
			bad = append(bad, chunk.BadSpan{Offset: i, Len: 1, Err: err})
		}
		i++
		for i < len(body) && body[i] != chunk.Magic {
			bad[len(bad)-1].Len++
			i++
		}
	}
	return frames, bad
}

// sameAsReference checks DecodeStream against referenceStream, error texts included (so a CRC computed by the
// prefix table must equal the direct one even when it does not match).
func sameAsReference(tb testing.TB, body []byte) {
	tb.Helper()
	frames, bad := chunk.DecodeStream(body, nil, nil)
	wantFrames, wantBad := referenceStream(body)
	if len(frames) != len(wantFrames) || len(bad) != len(wantBad) {
		tb.Fatalf("%d frames %d spans, reference %d frames %d spans", len(frames), len(bad), len(wantFrames),
			len(wantBad))
	}
	for i := range frames {
		if frames[i].Offset != wantFrames[i].Offset || frames[i].Len != wantFrames[i].Len {
			tb.Fatalf("frame %d at %d+%d, reference %d+%d", i, frames[i].Offset, frames[i].Len,
				wantFrames[i].Offset, wantFrames[i].Len)
		}
	}
	for i := range bad {
		if bad[i].Error() != wantBad[i].Error() {
			tb.Fatalf("span %d: %v\nreference: %v", i, bad[i], wantBad[i])
		}
	}
}

// hostileBody alternates minimal valid chunks with headers claiming claim payload bytes, the shape that made
// re-sync quadratic before streamCRC.
func hostileBody(size, claim int) []byte {
	minimal := chunk.Chunk{Type: chunk.TypeHeartbeat}.Encode()
	header := []byte{chunk.Magic, chunk.Version, byte(chunk.TypeMetrics), 0, byte(claim), byte(claim >> 8), 0, 0}
	var b []byte
	for len(b) < size {
		b = append(append(b, minimal...), header...)
	}
	return b
}

func TestDecodeStreamHostile(t *testing.T) {
	for _, claim := range []int{300, 4000, 65535} {
		body := hostileBody(64<<10, claim)
		if claim == 65535 {
			body = hostileBody(100<<10, claim)
		}
		sameAsReference(t, body)
		frames, bad := chunk.DecodeStream(body, nil, nil)
		if want := (len(body) + 17) / 18; len(frames) != want || len(bad) != want {
			t.Fatalf("claim %d: %d frames %d spans, want %d each", claim, len(frames), len(bad), want)
		}
	}
	// A genuine large chunk after heavy garbage is still found.
	big := chunk.Chunk{Type: chunk.TypeTraceFragment, Payload: bytes.Repeat([]byte{0xEC, 0x01, 0x04}, 3000)}.Encode()
	body := join(hostileBody(40<<10, 9000), big, hostileBody(20<<10, 500))
	sameAsReference(t, body)
	frames, _ := chunk.DecodeStream(body, nil, nil)
	found := false
	for _, f := range frames {
		found = found || f.Len == len(big)
	}
	if !found {
		t.Fatal("large chunk after garbage not found")
	}
}

func TestDecodeStreamEdges(t *testing.T) {
	for _, body := range [][]byte{nil, {}, {chunk.Magic}, bytes.Repeat([]byte{chunk.Magic}, 50),
		[]byte(strings.Repeat("\xEC\x01\x01", 200)), vector(t, "v09_minimal")[:9]} {
		frames, bad := chunk.DecodeStream(body, nil, nil)
		coverage(t, body, frames, bad)
		sameAsReference(t, body)
	}
}

// coverage checks the DecodeStream invariants: frames and bad spans tile the body in order without overlap,
// every frame re-encodes to exactly its bytes, and no two bad spans touch (they would have been merged).
func coverage(tb testing.TB, body []byte, frames []chunk.Frame, bad []chunk.BadSpan) {
	tb.Helper()
	pos, fi, bi := 0, 0, 0
	lastBadEnd := -1
	for pos < len(body) {
		switch {
		case fi < len(frames) && frames[fi].Offset == pos:
			f := frames[fi]
			if f.Len != f.Size() || !bytes.Equal(f.Encode(), body[f.Offset:f.Offset+f.Len]) {
				tb.Fatalf("frame at %d does not re-encode to its bytes", f.Offset)
			}
			pos += f.Len
			fi++
		case bi < len(bad) && bad[bi].Offset == pos && bad[bi].Len > 0:
			if pos == lastBadEnd {
				tb.Fatalf("adjacent bad spans at %d", pos)
			}
			if bad[bi].Err == nil {
				tb.Fatalf("bad span at %d without a cause", pos)
			}
			pos += bad[bi].Len
			lastBadEnd = pos
			bi++
		default:
			tb.Fatalf("byte %d is neither in a frame nor in a bad span", pos)
		}
	}
	if pos != len(body) || fi != len(frames) || bi != len(bad) {
		tb.Fatalf("coverage ended at %d of %d with %d/%d frames, %d/%d spans", pos, len(body), fi, len(frames), bi,
			len(bad))
	}
}
