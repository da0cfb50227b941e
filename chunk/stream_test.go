package chunk_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

func TestDecodeErrors(t *testing.T) {
	hb := vector(t, "v02_heartbeat")
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), hb...)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"three bytes", hb[:3], chunk.ErrShort},
		{"empty", nil, chunk.ErrShort},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 0xED; return b }), chunk.ErrMagic},
		{"version 99", mod(func(b []byte) []byte { b[1] = 99; return b }), chunk.ErrVersion},
		{"truncated payload", hb[:len(hb)-3], chunk.ErrTruncated},
		{"flipped payload byte", mod(func(b []byte) []byte { b[12] ^= 0x80; return b }), chunk.ErrCRC},
		{"flipped crc", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), chunk.ErrCRC},
		{"unknown type with good crc", chunk.Chunk{Type: 0x42, Payload: []byte{1}}.Encode(), chunk.ErrType},
		{"type zero", chunk.Chunk{Type: 0, Payload: nil}.Encode(), chunk.ErrType},
	}
	for _, c := range cases {
		if _, _, err := chunk.Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestPayloadErrors(t *testing.T) {
	if _, err := chunk.ParseFault(make([]byte, 148)); err == nil || err.Error() != "failed to parse fault payload" ||
		!errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("short fault: %v", err)
	}
	if _, err := chunk.ParseReboot(make([]byte, 9)); err == nil || err.Error() != "failed to parse reboot reason payload" {
		t.Fatalf("short reboot: %v", err)
	}
	if _, err := chunk.ParseOtaRequest(make([]byte, 13)); err == nil || err.Error() != "failed to parse OTA request payload" {
		t.Fatalf("short OTA request: %v", err)
	}
	if _, err := chunk.ParseHeartbeat(make([]byte, 19)); !errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("short heartbeat: %v", err)
	}
	if _, err := chunk.ParseTraceFragment(make([]byte, 7)); !errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("short trace: %v", err)
	}
	for _, p := range [][]byte{{}, {40, 'a'}, {1, 'a', 9, 'x'}, {1, 'a', 0, 1, 2, 3}} {
		if _, err := chunk.ParseDeviceInfo(p); !errors.Is(err, chunk.ErrPayload) {
			t.Fatalf("device info %x: %v", p, err)
		}
	}
	// Lossy UTF-8 like ferrite.
	d, err := chunk.ParseDeviceInfo(append([]byte{2, 0xff, 'a', 0}, make([]byte, 8)...))
	if err != nil || d.DeviceID != "\uFFFDa" {
		t.Fatalf("lossy device id %q %v", d.DeviceID, err)
	}
}

func TestParseMetricsTruncated(t *testing.T) {
	p := chunk.AppendMetricsPayload(nil, []chunk.Metric{chunk.CounterMetric("a", 1, 0), chunk.CounterMetric("b", 2, 0)})
	ms, err := chunk.ParseMetrics(nil, p[:len(p)-1])
	if !errors.Is(err, chunk.ErrPayload) || len(ms) != 1 || ms[0].Key != "a" {
		t.Fatalf("truncated second entry: %v %v", ms, err)
	}
	p[0] = 5 // claims more entries than present
	ms, err = chunk.ParseMetrics(nil, p)
	if !errors.Is(err, chunk.ErrPayload) || len(ms) != 2 {
		t.Fatalf("count too large: %v %v", ms, err)
	}
	if _, err := chunk.ParseMetrics(nil, nil); !errors.Is(err, chunk.ErrPayload) {
		t.Fatal("empty metrics payload accepted")
	}
	if ms, err := chunk.ParseMetrics(nil, []byte{0}); err != nil || len(ms) != 0 {
		t.Fatalf("zero entries: %v %v", ms, err)
	}
}

func TestV13Stream(t *testing.T) {
	body := vector(t, "v13_batch")
	frames, bad := chunk.DecodeStream(body, nil, nil)
	if len(bad) != 0 || len(frames) != 4 {
		t.Fatalf("%d frames, %v", len(frames), bad)
	}
	wantTypes := []chunk.Type{chunk.TypeDeviceInfo, chunk.TypeRebootReason, chunk.TypeMetrics, chunk.TypeHeartbeat}
	wantOffsets := []int{0, 36, 56, 134}
	for i, f := range frames {
		if f.Type != wantTypes[i] || f.Offset != wantOffsets[i] {
			t.Fatalf("frame %d: %v at %d", i, f.Type, f.Offset)
		}
	}
	// Trailing garbage: the four frames and one bad span.
	frames, bad = chunk.DecodeStream(append(append([]byte(nil), body...), 0x42), nil, nil)
	if len(frames) != 4 || len(bad) != 1 || bad[0].Offset != 168 || bad[0].Len != 1 {
		t.Fatalf("trailing garbage: %d frames %v", len(frames), bad)
	}
	// Leading garbage: ferrite stops with 0 chunks; we re-sync.
	frames, bad = chunk.DecodeStream(append([]byte{0xEC}, body...), nil, nil)
	if len(frames) != 4 || len(bad) != 1 || bad[0].Offset != 0 || bad[0].Len != 1 || frames[0].Offset != 1 {
		t.Fatalf("leading garbage: %d frames %v", len(frames), bad)
	}
}

func TestStreamResync(t *testing.T) {
	v1, v4, v2 := vector(t, "v01_device_info"), vector(t, "v04_reboot_reason"), vector(t, "v02_heartbeat")
	corrupt := append([]byte(nil), v4...)
	corrupt[9] ^= 0xFF
	var body []byte
	body = append(body, "junk\xEC\x01"...) // 6 bytes, including a false magic
	body = append(body, v1...)
	body = append(body, corrupt...)
	body = append(body, v2...)
	body = append(body, 0xEC, 0x01, 0x03) // a header cut short at the end
	frames, bad := chunk.DecodeStream(body, nil, nil)
	if len(frames) != 2 || frames[0].Type != chunk.TypeDeviceInfo || frames[1].Type != chunk.TypeHeartbeat {
		t.Fatalf("frames %+v", frames)
	}
	if len(bad) != 3 {
		t.Fatalf("bad spans %v", bad)
	}
	if bad[0].Offset != 0 || bad[0].Len != 6 || !errors.Is(bad[1].Err, chunk.ErrCRC) || bad[1].Len != len(v4) ||
		bad[2].Len != 3 || !errors.Is(bad[2].Err, chunk.ErrShort) {
		t.Fatalf("spans %v", bad)
	}
	if msg := bad[1].Error(); msg == "" || !bytes.Contains([]byte(msg), []byte("bytes 42-61")) {
		t.Fatalf("span message %q", msg)
	}
	coverage(t, body, frames, bad)
}

// coverage checks that frames and bad spans tile the body in order, and that every frame is its exact bytes.
func coverage(tb testing.TB, body []byte, frames []chunk.Frame, bad []chunk.BadSpan) {
	tb.Helper()
	pos, fi, bi := 0, 0, 0
	for pos < len(body) {
		switch {
		case fi < len(frames) && frames[fi].Offset == pos:
			f := frames[fi]
			if !bytes.Equal(f.Encode(), body[f.Offset:f.Offset+f.Len]) {
				tb.Fatalf("frame at %d does not re-encode to its bytes", f.Offset)
			}
			pos += f.Len
			fi++
		case bi < len(bad) && bad[bi].Offset == pos && bad[bi].Len > 0:
			pos += bad[bi].Len
			bi++
		default:
			tb.Fatalf("byte %d is neither in a frame nor in a bad span", pos)
		}
	}
	if pos != len(body) || fi != len(frames) || bi != len(bad) {
		tb.Fatalf("coverage ended at %d of %d with %d/%d frames, %d/%d spans", pos, len(body), fi, len(frames), bi, len(bad))
	}
}

func TestReassemble(t *testing.T) {
	frags := []chunk.TraceFragment{{Offset: 5, Data: []byte(" world")}, {Offset: 0, Data: []byte("hello")}}
	got, err := chunk.Reassemble(frags, 64)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("%q %v", got, err)
	}
	for _, bad := range [][]chunk.TraceFragment{
		{{Offset: 1, Data: []byte("x")}},
		{{Offset: 0, Data: []byte("ab")}, {Offset: 1, Data: []byte("c")}},
		{{Offset: 60, Data: make([]byte, 10)}},
	} {
		if _, err := chunk.Reassemble(bad, 64); !errors.Is(err, chunk.ErrTrace) {
			t.Fatalf("Reassemble(%v) = %v", bad, err)
		}
	}
}

func TestTypeNames(t *testing.T) {
	names := map[chunk.Type]string{chunk.TypeHeartbeat: "Heartbeat", chunk.TypeMetrics: "Metrics",
		chunk.TypeFaultRecord: "FaultRecord", chunk.TypeTraceFragment: "TraceFragment",
		chunk.TypeRebootReason: "RebootReason", chunk.TypeDeviceInfo: "DeviceInfo", chunk.TypeOtaRequest: "OtaRequest",
		0x42: "Type(0x42)"}
	for ty, want := range names {
		if ty.String() != want {
			t.Fatalf("%d: %q", ty, ty.String())
		}
	}
}
