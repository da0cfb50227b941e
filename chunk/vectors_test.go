package chunk_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// The §9 vectors of the ferrite compatibility spec, byte for byte, from testdata.

// vector loads a single-frame or body vector: hex, whitespace ignored.
func vector(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// vectorCases loads a multi-case vector: one "input -> output" per line, # comments.
func vectorCases(tb testing.TB, name string) [][2]string {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	var cases [][2]string
	for line := range strings.Lines(string(raw)) {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		in, out, ok := strings.Cut(line, "->")
		if !ok {
			tb.Fatalf("%s: line without ->: %q", name, line)
		}
		cases = append(cases, [2]string{strings.TrimSpace(in), strings.TrimSpace(out)})
	}
	return cases
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decodeOne decodes a single-frame vector, checks its header and that it re-encodes to the same bytes.
func decodeOne(tb testing.TB, name string, typ chunk.Type, flags chunk.Flags, seq uint16, payloadLen int) chunk.Chunk {
	tb.Helper()
	b := vector(tb, name)
	c, n, err := chunk.Decode(b)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if n != len(b) || c.Size() != len(b) {
		tb.Fatalf("%s: consumed %d, Size %d, of %d bytes", name, n, c.Size(), len(b))
	}
	if c.Type != typ || c.Flags != flags || c.Seq != seq || len(c.Payload) != payloadLen {
		tb.Fatalf("%s: header %v flags %#x seq %d len %d", name, c.Type, c.Flags, c.Seq, len(c.Payload))
	}
	if enc := c.Encode(); !bytes.Equal(enc, b) {
		tb.Fatalf("%s: re-encoded\n%x\nwant\n%x", name, enc, b)
	}
	return c
}

// samePayload checks that a parsed value encodes back to the vector's payload, and inside a new frame with the
// same header to the vector's exact bytes.
func samePayload(tb testing.TB, name string, c chunk.Chunk, payload []byte) {
	tb.Helper()
	if !bytes.Equal(payload, c.Payload) {
		tb.Fatalf("%s: payload re-encoded\n%x\nwant\n%x", name, payload, c.Payload)
	}
	rebuilt := chunk.Chunk{Type: c.Type, Flags: c.Flags, Seq: c.Seq, Payload: payload}
	if !bytes.Equal(rebuilt.AppendEncode([]byte{0xAA}), append([]byte{0xAA}, vector(tb, name)...)) {
		tb.Fatalf("%s: rebuilt frame differs", name)
	}
}

var testKey = chunk.Key(bytes.Repeat([]byte{0x42}, 16))

func TestV0CRC(t *testing.T) {
	cases := vectorCases(t, "v00_crc")
	if len(cases) != 2 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		want, err := strconv.ParseUint(c[1], 16, 16)
		if err != nil {
			t.Fatal(err)
		}
		if got := chunk.CRC16(unhex(t, c[0])); got != uint16(want) {
			t.Errorf("CRC16(%s) = %04X, want %04X", c[0], got, want)
		}
	}
}

func TestV1DeviceInfo(t *testing.T) {
	c := decodeOne(t, "v01_device_info", chunk.TypeDeviceInfo, chunk.FlagLast, 0, 26)
	d, err := chunk.ParseDeviceInfo(c.Payload)
	if err != nil || d != (chunk.DeviceInfo{DeviceID: "test-device", FirmwareVersion: "1.0.0", BuildID: 0xDEADBEEF}) {
		t.Fatalf("%+v %v", d, err)
	}
	samePayload(t, "v01_device_info", c, d.AppendPayload(nil))
}

func TestV2V3Heartbeat(t *testing.T) {
	c := decodeOne(t, "v02_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast, 1, 24)
	h, err := chunk.ParseHeartbeat(c.Payload)
	want := chunk.Heartbeat{UptimeTicks: 12345, FreeStack: 1024, MetricsCount: 5, DeviceKey: 0xA300F1B2}
	if err != nil || h != want {
		t.Fatalf("%+v %v", h, err)
	}
	samePayload(t, "v02_heartbeat", c, h.AppendPayload(nil))

	legacy := decodeOne(t, "v03_heartbeat_legacy", chunk.TypeHeartbeat, chunk.FlagLast, 1, 20)
	h, err = chunk.ParseHeartbeat(legacy.Payload)
	want.DeviceKey = 0
	if err != nil || h != want {
		t.Fatalf("legacy %+v %v", h, err)
	}
	// Encoding always writes the 24-byte form: the legacy payload plus a zero key.
	samePayload(t, "v03_heartbeat_legacy", legacy, h.AppendPayload(nil)[:20])
}

func TestV4Reboot(t *testing.T) {
	c := decodeOne(t, "v04_reboot_reason", chunk.TypeRebootReason, chunk.FlagLast, 2, 10)
	r, err := chunk.ParseReboot(c.Payload)
	want := chunk.Reboot{Reason: 4, BootSequence: 42, UptimeBeforeReboot: 100000}
	if err != nil || r != want || chunk.RebootReasonName(r.Reason) != "HardFault" {
		t.Fatalf("%+v %v", r, err)
	}
	samePayload(t, "v04_reboot_reason", c, r.AppendPayload(nil))
}

func TestV5Metrics(t *testing.T) {
	c := decodeOne(t, "v05_metrics", chunk.TypeMetrics, chunk.FlagLast, 3, 68)
	ms, err := chunk.ParseMetrics(nil, c.Payload)
	want := []chunk.Metric{chunk.CounterMetric("clicks", 42, 1000), chunk.GaugeMetric("temp", 25.5, 2000),
		chunk.HistogramMetric("lat", 1.5, 8.25, 3000)}
	if err != nil || len(ms) != len(want) {
		t.Fatalf("%d metrics, %v", len(ms), err)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, ms[i], want[i])
		}
	}
	if ms[0].Counter() != 42 || ms[1].Gauge() != 25.5 || ms[2].HistogramMin() != 1.5 || ms[2].HistogramMax() != 8.25 {
		t.Fatalf("values %d %v %v %v", ms[0].Counter(), ms[1].Gauge(), ms[2].HistogramMin(), ms[2].HistogramMax())
	}
	if ms[0].Type.String() != "counter" || ms[1].Type.String() != "gauge" || ms[2].Type.String() != "histogram" ||
		chunk.MetricType(9).String() != "type(9)" {
		t.Fatal("metric type names")
	}
	samePayload(t, "v05_metrics", c, chunk.AppendMetricsPayload(nil, ms))
}

func TestV6OtaRequest(t *testing.T) {
	c := decodeOne(t, "v06_ota_request", chunk.TypeOtaRequest, chunk.FlagLast, 4, 14)
	o, err := chunk.ParseOtaRequest(c.Payload)
	if err != nil || o != (chunk.OtaRequest{BuildID: 0xDEADBEEF, MaxChunkSize: 256, OtaCapable: 1}) {
		t.Fatalf("%+v %v", o, err)
	}
	samePayload(t, "v06_ota_request", c, o.AppendPayload(nil))
}

func TestV7Fault(t *testing.T) {
	c := decodeOne(t, "v07_fault_record", chunk.TypeFaultRecord, chunk.FlagLast, 5, chunk.FaultPayloadSize)
	f, err := chunk.ParseFault(c.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := chunk.Fault{Type: 0, R0: 1, R1: 2, R2: 3, R3: 4, R12: 5, LR: 0x08001000, PC: 0x08002000,
		XPSR: 0x61000000, R4_11: [8]uint32{10, 11, 12, 13, 14, 15, 16, 17}, SP: 0x20003F00, CFSR: 0x400,
		HFSR: 0x40000000}
	for i := range want.Stack {
		want.Stack[i] = 0xDEADBEEF
	}
	if f != want {
		t.Fatalf("fault\n got %+v\nwant %+v", f, want)
	}
	if chunk.FaultTypeName(f.Type) != "HardFault" {
		t.Fatal(chunk.FaultTypeName(f.Type))
	}
	samePayload(t, "v07_fault_record", c, f.AppendPayload(nil))
}

func TestV8Trace(t *testing.T) {
	c := decodeOne(t, "v08_trace_fragment", chunk.TypeTraceFragment, chunk.FlagLast, 6, 13)
	tf, err := chunk.ParseTraceFragment(c.Payload)
	if err != nil || tf.Offset != 0 || string(tf.Data) != "hello" {
		t.Fatalf("%+v %v", tf, err)
	}
	samePayload(t, "v08_trace_fragment", c, tf.AppendPayload(nil))
}

func TestV9Minimal(t *testing.T) {
	c := decodeOne(t, "v09_minimal", chunk.TypeHeartbeat, 0, 0, 0)
	if _, err := chunk.ParseHeartbeat(c.Payload); !errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("empty heartbeat: %v", err)
	}
	samePayload(t, "v09_minimal", c, nil)
}

func TestV10Encrypted(t *testing.T) {
	c := decodeOne(t, "v10_encrypted_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast|chunk.FlagEncrypted, 1, 45)
	v2 := decodeOne(t, "v02_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast, 1, 24)
	key, err := chunk.ParseKey("42424242424242424242424242424242")
	if err != nil || key != testKey {
		t.Fatalf("%x %v", key, err)
	}
	ciph, err := chunk.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ciph.Decrypt(c)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Type != v2.Type || plain.Flags != chunk.FlagLast || plain.Seq != 1 || !bytes.Equal(plain.Payload, v2.Payload) {
		t.Fatalf("decrypted %+v", plain)
	}
	again, err := ciph.Encrypt(v2, chunk.CounterNonce(0))
	if err != nil || !bytes.Equal(again.Encode(), vector(t, "v10_encrypted_heartbeat")) {
		t.Fatalf("Encrypt(V2, nonce 0) does not reproduce V10: %x %v", again.Encode(), err)
	}
	wrongKey := testKey
	wrongKey[15] ^= 1
	wrong, err := chunk.NewCipher(wrongKey)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := wrong.Decrypt(c); !errors.Is(err, chunk.ErrDecrypt) || out.Flags&chunk.FlagEncrypted == 0 {
		t.Fatalf("wrong key: %v, flags %#x", err, out.Flags)
	}
}

func TestV11Compressed(t *testing.T) {
	c := decodeOne(t, "v11_compressed_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast|chunk.FlagCompressed, 1, 18)
	v2 := decodeOne(t, "v02_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast, 1, 24)
	plain, err := chunk.Decompress(c)
	if err != nil || plain.Flags != chunk.FlagLast || !bytes.Equal(plain.Payload, v2.Payload) {
		t.Fatalf("decompressed %+v %v", plain, err)
	}
	comp, ok := chunk.CompressChunk(v2)
	if !ok || !bytes.Equal(comp.Encode(), vector(t, "v11_compressed_heartbeat")) {
		t.Fatalf("CompressChunk(V2) = %x %v", comp.Encode(), ok)
	}
}

func TestV12RLE(t *testing.T) {
	cases := vectorCases(t, "v12_rle")
	if len(cases) != 4 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		in, want := unhex(t, c[0]), unhex(t, c[1])
		got := chunk.RLECompress(nil, in)
		if !bytes.Equal(got, want) {
			t.Errorf("RLECompress(%.20s…) = %x, want %x", c[0], got, want)
		}
		back, err := chunk.RLEDecompress(nil, want, len(in))
		if err != nil || !bytes.Equal(back, in) {
			t.Errorf("RLEDecompress(%x) = %x %v", want, back, err)
		}
		// CompressChunk only uses RLE when it is strictly shorter (ff010203040506 is not).
		_, ok := chunk.CompressChunk(chunk.Chunk{Type: chunk.TypeMetrics, Payload: in})
		if ok != (len(want) < len(in)) {
			t.Errorf("CompressChunk(%.20s…) compressed = %v", c[0], ok)
		}
	}
}

func TestV13Batch(t *testing.T) {
	body := vector(t, "v13_batch")
	if len(body) != 168 {
		t.Fatalf("%d bytes", len(body))
	}
	frames, bad := chunk.DecodeStream(body, nil, nil)
	if len(bad) != 0 {
		t.Fatalf("bad spans %v", bad)
	}
	want := []struct {
		typ         chunk.Type
		offset, len int
		vector      string
	}{
		{chunk.TypeDeviceInfo, 0, 36, "v01_device_info"},
		{chunk.TypeRebootReason, 36, 20, "v04_reboot_reason"},
		{chunk.TypeMetrics, 56, 78, "v05_metrics"},
		{chunk.TypeHeartbeat, 134, 34, "v02_heartbeat"},
	}
	if len(frames) != len(want) {
		t.Fatalf("%d frames", len(frames))
	}
	for i, w := range want {
		f := frames[i]
		if f.Type != w.typ || f.Offset != w.offset || f.Len != w.len || !bytes.Equal(f.Encode(), vector(t, w.vector)) {
			t.Errorf("frame %d: %v at %d len %d", i, f.Type, f.Offset, f.Len)
		}
	}
}
