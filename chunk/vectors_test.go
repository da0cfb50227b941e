package chunk_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// vector loads a §9 test vector from testdata.
func vector(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

func decodeOne(tb testing.TB, name string) chunk.Chunk {
	tb.Helper()
	b := vector(tb, name)
	c, n, err := chunk.Decode(b)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if n != len(b) {
		tb.Fatalf("%s: consumed %d of %d bytes", name, n, len(b))
	}
	// Every vector re-encodes to its exact bytes.
	if enc := c.Encode(); !bytes.Equal(enc, b) {
		tb.Fatalf("%s: re-encoded\n%x\nwant\n%x", name, enc, b)
	}
	return c
}

var testKey = chunk.Key(bytes.Repeat([]byte{0x42}, 16))

func TestV0CRC(t *testing.T) {
	if got := chunk.CRC16([]byte("123456789")); got != 0x29B1 {
		t.Fatalf("CRC(123456789) = %04X", got)
	}
	if got := chunk.CRC16(nil); got != 0xFFFF {
		t.Fatalf("CRC(empty) = %04X", got)
	}
}

func TestV1DeviceInfo(t *testing.T) {
	c := decodeOne(t, "v01_device_info")
	if c.Type != chunk.TypeDeviceInfo || c.Flags != chunk.FlagLast || c.Seq != 0 || len(c.Payload) != 26 {
		t.Fatalf("header %+v", c)
	}
	d, err := chunk.ParseDeviceInfo(c.Payload)
	if err != nil || d != (chunk.DeviceInfo{DeviceID: "test-device", FirmwareVersion: "1.0.0", BuildID: 0xDEADBEEF}) {
		t.Fatalf("%+v %v", d, err)
	}
	if !bytes.Equal(d.AppendPayload(nil), c.Payload) {
		t.Fatal("DeviceInfo payload does not round-trip")
	}
}

func TestV2V3Heartbeat(t *testing.T) {
	c := decodeOne(t, "v02_heartbeat")
	h, err := chunk.ParseHeartbeat(c.Payload)
	want := chunk.Heartbeat{UptimeTicks: 12345, FreeStack: 1024, MetricsCount: 5, DeviceKey: 0xA300F1B2}
	if err != nil || h != want || c.Seq != 1 {
		t.Fatalf("%+v %v", h, err)
	}
	if !bytes.Equal(h.AppendPayload(nil), c.Payload) {
		t.Fatal("heartbeat payload does not round-trip")
	}
	legacy := decodeOne(t, "v03_heartbeat_legacy")
	h, err = chunk.ParseHeartbeat(legacy.Payload)
	want.DeviceKey = 0
	if err != nil || h != want {
		t.Fatalf("legacy %+v %v", h, err)
	}
}

func TestV4Reboot(t *testing.T) {
	c := decodeOne(t, "v04_reboot_reason")
	r, err := chunk.ParseReboot(c.Payload)
	want := chunk.Reboot{Reason: 4, BootSequence: 42, UptimeBeforeReboot: 100000}
	if err != nil || r != want || c.Seq != 2 || chunk.RebootReasonName(r.Reason) != "HardFault" {
		t.Fatalf("%+v %v", r, err)
	}
	if !bytes.Equal(r.AppendPayload(nil), c.Payload) {
		t.Fatal("reboot payload does not round-trip")
	}
}

func TestV5Metrics(t *testing.T) {
	c := decodeOne(t, "v05_metrics")
	ms, err := chunk.ParseMetrics(nil, c.Payload)
	if err != nil || len(ms) != 3 {
		t.Fatalf("%d metrics, %v", len(ms), err)
	}
	if ms[0].Key != "clicks" || ms[0].Type != chunk.MetricCounter || ms[0].Counter() != 42 || ms[0].Ticks != 1000 {
		t.Fatalf("counter %+v", ms[0])
	}
	if ms[1].Key != "temp" || ms[1].Gauge() != 25.5 || ms[1].Ticks != 2000 {
		t.Fatalf("gauge %+v", ms[1])
	}
	if ms[2].Key != "lat" || ms[2].HistogramMin() != 1.5 || ms[2].HistogramMax() != 8.25 || ms[2].Ticks != 3000 {
		t.Fatalf("histogram %+v", ms[2])
	}
	rebuilt := []chunk.Metric{chunk.CounterMetric("clicks", 42, 1000), chunk.GaugeMetric("temp", 25.5, 2000),
		chunk.HistogramMetric("lat", 1.5, 8.25, 3000)}
	if !bytes.Equal(chunk.AppendMetricsPayload(nil, rebuilt), c.Payload) {
		t.Fatal("metrics payload does not round-trip")
	}
}

func TestV6OtaRequest(t *testing.T) {
	c := decodeOne(t, "v06_ota_request")
	o, err := chunk.ParseOtaRequest(c.Payload)
	if err != nil || o != (chunk.OtaRequest{BuildID: 0xDEADBEEF, MaxChunkSize: 256, OtaCapable: 1}) {
		t.Fatalf("%+v %v", o, err)
	}
	if !bytes.Equal(o.AppendPayload(nil), c.Payload) {
		t.Fatal("OTA payload does not round-trip")
	}
}

func TestV7Fault(t *testing.T) {
	c := decodeOne(t, "v07_fault_record")
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
	if !bytes.Equal(f.AppendPayload(nil), c.Payload) || chunk.FaultTypeName(f.Type) != "HardFault" {
		t.Fatal("fault payload does not round-trip")
	}
}

func TestV8Trace(t *testing.T) {
	c := decodeOne(t, "v08_trace_fragment")
	tf, err := chunk.ParseTraceFragment(c.Payload)
	if err != nil || tf.Offset != 0 || string(tf.Data) != "hello" || c.Flags&chunk.FlagLast == 0 {
		t.Fatalf("%+v %v", tf, err)
	}
	if !bytes.Equal(tf.AppendPayload(nil), c.Payload) {
		t.Fatal("trace payload does not round-trip")
	}
}

func TestV9Minimal(t *testing.T) {
	c := decodeOne(t, "v09_minimal")
	if c.Type != chunk.TypeHeartbeat || len(c.Payload) != 0 {
		t.Fatalf("%+v", c)
	}
	if _, err := chunk.ParseHeartbeat(c.Payload); !errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("empty heartbeat: %v", err)
	}
}

func TestV10Encrypted(t *testing.T) {
	c := decodeOne(t, "v10_encrypted_heartbeat")
	ciph, err := chunk.NewCipher(testKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ciph.Decrypt(c)
	if err != nil {
		t.Fatal(err)
	}
	v2 := decodeOne(t, "v02_heartbeat")
	if !bytes.Equal(plain.Payload, v2.Payload) || plain.Flags != chunk.FlagLast {
		t.Fatalf("decrypted %x flags %x", plain.Payload, plain.Flags)
	}
	again, err := ciph.Encrypt(v2, chunk.CounterNonce(0))
	if err != nil || !bytes.Equal(again.Encode(), vector(t, "v10_encrypted_heartbeat")) {
		t.Fatalf("Encrypt(V2) does not reproduce V10: %x %v", again.Encode(), err)
	}
	wrong, _ := chunk.NewCipher(chunk.Key{1})
	if _, err := wrong.Decrypt(c); !errors.Is(err, chunk.ErrDecrypt) {
		t.Fatalf("wrong key: %v", err)
	}
	tampered := c
	tampered.Payload = append([]byte(nil), c.Payload...)
	tampered.Payload[20] ^= 1
	if _, err := ciph.Decrypt(tampered); !errors.Is(err, chunk.ErrDecrypt) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	short := chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagEncrypted, Payload: make([]byte, 20)}
	if _, err := ciph.Decrypt(short); !errors.Is(err, chunk.ErrDecrypt) {
		t.Fatalf("short payload: %v", err)
	}
	if n := chunk.CounterNonce(0x01020304); n[0] != 4 || n[3] != 1 || n[4] != 0 || n[12] != 0 {
		t.Fatalf("nonce %x", n)
	}
}

func TestParseKey(t *testing.T) {
	k, err := chunk.ParseKey("42424242424242424242424242424242")
	if err != nil || k != testKey {
		t.Fatalf("%x %v", k, err)
	}
	for _, s := range []string{"", "4242", "zz424242424242424242424242424242", "4242424242424242424242424242424242"} {
		if _, err := chunk.ParseKey(s); !errors.Is(err, chunk.ErrKey) {
			t.Fatalf("ParseKey(%q) = %v", s, err)
		}
	}
}

func TestV11Compressed(t *testing.T) {
	c := decodeOne(t, "v11_compressed_heartbeat")
	plain, err := chunk.Decompress(c)
	v2 := decodeOne(t, "v02_heartbeat")
	if err != nil || !bytes.Equal(plain.Payload, v2.Payload) || plain.Flags != chunk.FlagLast {
		t.Fatalf("decompressed %x %v", plain.Payload, err)
	}
	comp, ok := chunk.CompressChunk(v2)
	if !ok || !bytes.Equal(comp.Encode(), vector(t, "v11_compressed_heartbeat")) {
		t.Fatalf("CompressChunk(V2) = %x", comp.Encode())
	}
}

func TestV12RLE(t *testing.T) {
	cases := []struct{ in, out string }{
		{"00000000000102030303030304", "ff000501 02ff030504"},
		{"ffffffffff0102", "ffff050102"},
		{"ff010203040506", "ffff01010203040506"},
		{strings.Repeat("07", 300), "ff07ffff072d"},
	}
	for _, c := range cases {
		in, _ := hex.DecodeString(c.in)
		want, _ := hex.DecodeString(strings.ReplaceAll(c.out, " ", ""))
		got := chunk.RLECompress(nil, in)
		if !bytes.Equal(got, want) {
			t.Fatalf("RLE(%s) = %x, want %x", c.in, got, want)
		}
		back, err := chunk.RLEDecompress(nil, got, len(in))
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("round trip of %s: %x %v", c.in, back, err)
		}
	}
	// Not compressible: the SDK leaves the chunk as it is.
	in, _ := hex.DecodeString("ff010203040506")
	if _, ok := chunk.CompressChunk(chunk.Chunk{Type: chunk.TypeMetrics, Payload: in}); ok {
		t.Fatal("compressed a payload RLE makes longer")
	}
	for _, bad := range []string{"ff", "ff07", "01ff"} {
		b, _ := hex.DecodeString(bad)
		if _, err := chunk.RLEDecompress(nil, b, 100); !errors.Is(err, chunk.ErrDecompress) {
			t.Fatalf("RLEDecompress(%s) = %v", bad, err)
		}
	}
	if _, err := chunk.RLEDecompress(nil, []byte{0xff, 1, 200}, 100); !errors.Is(err, chunk.ErrDecompress) {
		t.Fatal("output limit not enforced")
	}
	// A length prefix that disagrees with the data is an error.
	bad := chunk.Chunk{Flags: chunk.FlagCompressed, Payload: []byte{5, 0, 0xff, 1, 3}}
	if _, err := chunk.Decompress(bad); !errors.Is(err, chunk.ErrDecompress) {
		t.Fatal("length mismatch accepted")
	}
}
