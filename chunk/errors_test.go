package chunk_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

func TestDecodeErrors(t *testing.T) {
	hb := vector(t, "v02_heartbeat")
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(hb); f(b); return b }
	cases := []struct {
		name string
		in   []byte
		want error
		text string // expected message
	}{
		{"empty", nil, chunk.ErrShort, "short chunk: 0 bytes, need at least 10"},
		{"nine bytes", hb[:9], chunk.ErrShort, "short chunk: 9 bytes, need at least 10"},
		{"bad magic", mod(func(b []byte) { b[0] = 0xED }), chunk.ErrMagic, "bad magic: 0xED, want 0xEC"},
		{"version 99", mod(func(b []byte) { b[1] = 99 }), chunk.ErrVersion, "unsupported version: 99, want 1"},
		{"type zero", mod(func(b []byte) { b[2] = 0 }), chunk.ErrType, "unknown chunk type: 0x00"},
		{"unknown type, valid crc", chunk.Chunk{Type: 0x42, Payload: []byte{1}}.Encode(), chunk.ErrType,
			"unknown chunk type: 0x42"},
		{"truncated payload", hb[:len(hb)-3], chunk.ErrTruncated,
			"truncated chunk: payload_len 24 needs 34 bytes, 31 left"},
		{"flipped payload byte", mod(func(b []byte) { b[12] ^= 0x80 }), chunk.ErrCRC, "crc mismatch: expected 0xC313"},
		{"flipped crc byte", mod(func(b []byte) { b[len(b)-1] ^= 1 }), chunk.ErrCRC,
			"crc mismatch: expected 0xC213 (stored), got 0xC313 (computed)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, n, err := chunk.Decode(c.in)
			if !errors.Is(err, c.want) || !strings.HasPrefix(err.Error(), c.text) {
				t.Fatalf("%v, want %v (%s)", err, c.want, c.text)
			}
			if n != 0 || ch.Payload != nil {
				t.Fatalf("failed decode returned %d bytes, %+v", n, ch)
			}
		})
	}
	// Extra bytes after a good frame are left for the caller.
	if _, n, err := chunk.Decode(join(hb, []byte{1, 2, 3})); err != nil || n != len(hb) {
		t.Fatalf("trailing bytes: %d %v", n, err)
	}
}

func TestPayloadErrors(t *testing.T) {
	cases := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		text  string // exact message; ferrite's own where ferrite reports the error
	}{
		{"heartbeat", func(p []byte) error { _, err := chunk.ParseHeartbeat(p); return err }, make([]byte, 19),
			"heartbeat payload is 19 bytes, need at least 20"},
		{"fault", func(p []byte) error { _, err := chunk.ParseFault(p); return err }, make([]byte, 148),
			"failed to parse fault payload"},
		{"reboot", func(p []byte) error { _, err := chunk.ParseReboot(p); return err }, make([]byte, 9),
			"failed to parse reboot reason payload"},
		{"ota", func(p []byte) error { _, err := chunk.ParseOtaRequest(p); return err }, make([]byte, 13),
			"failed to parse OTA request payload"},
		{"trace", func(p []byte) error { _, err := chunk.ParseTraceFragment(p); return err }, make([]byte, 7),
			"trace fragment payload is 7 bytes, need at least 8"},
		{"metrics empty", func(p []byte) error { _, err := chunk.ParseMetrics(nil, p); return err }, nil,
			"metrics payload is empty, need at least the count byte"},
		{"device info empty", parseDeviceInfo, nil, "device info: payload is empty"},
		{"device_id overrun", parseDeviceInfo, append([]byte{40}, make([]byte, 11)...),
			"device info: device_id length 40 overruns payload of 12 bytes"},
		{"fw overrun", parseDeviceInfo, []byte{1, 'a', 9, 'x'},
			"device info: firmware_version length 9 overruns payload of 4 bytes"},
		{"no build id", parseDeviceInfo, []byte{1, 'a', 0, 1, 2, 3}, "device info: 3 bytes left for the 8-byte build_id"},
	}
	for _, c := range cases {
		err := c.parse(c.in)
		if !errors.Is(err, chunk.ErrPayload) || err.Error() != c.text {
			t.Errorf("%s: %v, want %q", c.name, err, c.text)
		}
	}
	// Minimum sizes are accepted and extra bytes ignored, as in ferrite.
	if h, err := chunk.ParseHeartbeat(make([]byte, 23)); err != nil || h.DeviceKey != 0 {
		t.Fatalf("23-byte heartbeat: %+v %v", h, err)
	}
	for _, p := range [][]byte{make([]byte, 149), make([]byte, 200)} {
		if _, err := chunk.ParseFault(p); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := chunk.ParseDeviceInfo(make([]byte, 10)); err != nil || d != (chunk.DeviceInfo{}) {
		t.Fatalf("empty id and version: %+v %v", d, err)
	}
}

func parseDeviceInfo(p []byte) error { _, err := chunk.ParseDeviceInfo(p); return err }

func TestParseMetricsTruncated(t *testing.T) {
	p := chunk.AppendMetricsPayload(nil, []chunk.Metric{chunk.CounterMetric("a", 1, 0), chunk.CounterMetric("b", 2, 0)})
	ms, err := chunk.ParseMetrics(nil, p[:len(p)-1])
	if !errors.Is(err, chunk.ErrPayload) || len(ms) != 1 || ms[0].Key != "a" ||
		err.Error() != "metrics: entry 2 of 2 is truncated: needs 19 bytes, 18 left" {
		t.Fatalf("truncated second entry: %v %v", ms, err)
	}
	p[0] = 5 // claims more entries than present
	ms, err = chunk.ParseMetrics(nil, p)
	if !errors.Is(err, chunk.ErrPayload) || len(ms) != 2 || err.Error() != "metrics: payload ends before entry 3 of 5" {
		t.Fatalf("count too large: %v %v", ms, err)
	}
	if ms, err := chunk.ParseMetrics(nil, []byte{0}); err != nil || len(ms) != 0 {
		t.Fatalf("zero entries: %v %v", ms, err)
	}
	// Appends to dst; an unknown metric type is kept with its raw bytes.
	raw := chunk.Metric{Key: "r", Type: 7, Value: [8]byte{1, 2, 3, 4, 5, 6, 7, 0xFF}, Ticks: 9}
	ms, err = chunk.ParseMetrics(ms[:1], chunk.AppendMetricsPayload(nil, []chunk.Metric{raw}))
	if err != nil || len(ms) != 2 || ms[1] != raw {
		t.Fatalf("raw entry: %+v %v", ms, err)
	}
}

// Device text is decoded as Rust's String::from_utf8_lossy does.
func TestLossyUTF8(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"h\xffi", "h\uFFFDi"},
		{"\xff\xff", "\uFFFD\uFFFD"},                     // each invalid byte
		{"Hello \xF0\x90\x80World", "Hello \uFFFDWorld"}, // a cut 4-byte character is one
		{"\xF0\x90\x80\xF0\x90\x80", "\uFFFD\uFFFD"},     // two cut characters are two
		{"\xE2\x82", "\uFFFD"},                           // cut at the end
		{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"},           // a surrogate: ED then two stray bytes
		{"\xC0\xAF", "\uFFFD\uFFFD"},                     // overlong
		{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, // beyond U+10FFFF
		{"é€😀", "é€😀"},
	}
	for _, c := range cases {
		p := chunk.DeviceInfo{DeviceID: c.in, FirmwareVersion: "1"}.AppendPayload(nil)
		d, err := chunk.ParseDeviceInfo(p)
		if err != nil || d.DeviceID != c.want {
			t.Errorf("%q -> %q (%v), want %q", c.in, d.DeviceID, err, c.want)
		}
		ms, err := chunk.ParseMetrics(nil, chunk.AppendMetricsPayload(nil, []chunk.Metric{{Key: c.in}}))
		if err != nil || ms[0].Key != c.want {
			t.Errorf("metric key %q -> %q", c.in, ms[0].Key)
		}
	}
}

func TestCryptErrors(t *testing.T) {
	for _, s := range []string{"", "4242", "zz424242424242424242424242424242", strings.Repeat("42", 17)} {
		if _, err := chunk.ParseKey(s); !errors.Is(err, chunk.ErrKey) {
			t.Errorf("ParseKey(%q) = %v", s, err)
		}
	}
	if _, err := chunk.ParseKey("0x424242424242424242424242424242"); err == nil ||
		!strings.Contains(err.Error(), "want 32 hex characters") {
		t.Errorf("ParseKey with 0x prefix: %v", err)
	}
	c, err := chunk.NewCipher(testKey)
	if err != nil {
		t.Fatal(err)
	}
	v10 := decodeOne(t, "v10_encrypted_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast|chunk.FlagEncrypted, 1, 45)
	tampered := v10
	tampered.Payload = bytes.Clone(v10.Payload)
	tampered.Payload[20] ^= 1
	for name, ch := range map[string]chunk.Chunk{
		"tampered": tampered,
		"20 bytes": {Type: chunk.TypeHeartbeat, Flags: chunk.FlagEncrypted, Payload: make([]byte, 20)},
		"21 bytes": {Type: chunk.TypeHeartbeat, Flags: chunk.FlagEncrypted, Payload: make([]byte, 21)},
	} {
		out, err := c.Decrypt(ch)
		if !errors.Is(err, chunk.ErrDecrypt) || out.Flags&chunk.FlagEncrypted == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	plain := decodeOne(t, "v02_heartbeat", chunk.TypeHeartbeat, chunk.FlagLast, 1, 24)
	if out, err := c.Decrypt(plain); err != nil || !bytes.Equal(out.Payload, plain.Payload) || out.Flags != plain.Flags {
		t.Fatalf("plain chunk changed: %+v %v", out, err)
	}
	if n := chunk.CounterNonce(0x01020304); n != [13]byte{4, 3, 2, 1} {
		t.Fatalf("nonce %x", n)
	}
	// Empty plaintext seals to nonce and tag alone, and opens again.
	sealed, err := c.Encrypt(chunk.Chunk{Type: chunk.TypeHeartbeat}, chunk.CounterNonce(7))
	if err != nil || len(sealed.Payload) != 21 {
		t.Fatalf("%+v %v", sealed, err)
	}
	if out, err := c.Decrypt(sealed); err != nil || len(out.Payload) != 0 || out.Flags != 0 {
		t.Fatalf("%+v %v", out, err)
	}
	if _, err := c.Encrypt(chunk.Chunk{Payload: make([]byte, 65515)}, chunk.CounterNonce(0)); !errors.Is(err, chunk.ErrPayload) {
		t.Fatalf("oversize plaintext: %v", err)
	}
}

func TestRLEErrors(t *testing.T) {
	for _, in := range [][]byte{{0xFF}, {0xFF, 7}, {1, 0xFF}} {
		if _, err := chunk.RLEDecompress(nil, in, 100); !errors.Is(err, chunk.ErrDecompress) {
			t.Errorf("RLEDecompress(%x) = %v", in, err)
		}
	}
	if out, err := chunk.RLEDecompress(nil, []byte{0xFF, 1, 0, 2}, 100); err != nil || !bytes.Equal(out, []byte{2}) {
		t.Errorf("zero count: %x %v", out, err)
	}
	for _, in := range [][]byte{{0xFF, 1, 200}, bytes.Repeat([]byte{1}, 101)} {
		if _, err := chunk.RLEDecompress(nil, in, 100); !errors.Is(err, chunk.ErrDecompress) {
			t.Errorf("limit not enforced for %d bytes", len(in))
		}
	}
	for name, p := range map[string][]byte{
		"no prefix":       {5},
		"length mismatch": {5, 0, 0xFF, 1, 3},
		"dangling marker": {1, 0, 0xFF},
		"over prefix":     {1, 0, 0xFF, 1, 3},
	} {
		ch := chunk.Chunk{Flags: chunk.FlagCompressed, Payload: p}
		if out, err := chunk.Decompress(ch); !errors.Is(err, chunk.ErrDecompress) || out.Flags != chunk.FlagCompressed {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, ok := chunk.CompressChunk(chunk.Chunk{}); ok {
		t.Error("compressed an empty payload")
	}
	// The result must fit MaxSDKPayload with its 2-byte prefix: 248 distinct-ish bytes ending in a run.
	p := append(bytes.Repeat([]byte{1, 2}, 124), 0, 0, 0, 0) // 252 bytes -> 248 + 3 = 251 + prefix
	if _, ok := chunk.CompressChunk(chunk.Chunk{Payload: p}); ok {
		t.Error("compressed to more than MaxSDKPayload")
	}
	if out, ok := chunk.CompressChunk(chunk.Chunk{Payload: bytes.Repeat([]byte{9}, 1000)}); !ok || len(out.Payload) != 14 {
		t.Errorf("1000-byte run: %d bytes, %v", len(out.Payload), ok)
	}
}

func TestReassemble(t *testing.T) {
	hw := []chunk.TraceFragment{{Offset: 5, Data: []byte(" world")}, {Offset: 0, Data: []byte("hello")},
		{Offset: 0, Data: []byte("hello")}, {Offset: 3, Data: []byte("lo w")}}
	got, err := chunk.Reassemble(hw, 11)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := chunk.Reassemble(nil, 10); err != nil || len(got) != 0 {
		t.Fatalf("no fragments: %q %v", got, err)
	}
	for name, frags := range map[string][]chunk.TraceFragment{
		"gap at start": {{Offset: 1, Data: []byte("x")}},
		"gap":          {{Offset: 0, Data: []byte("ab")}, {Offset: 3, Data: []byte("d")}},
		"conflict":     {{Offset: 0, Data: []byte("ab")}, {Offset: 1, Data: []byte("c")}},
		"over max":     {{Offset: 0, Data: make([]byte, 12)}},
		"huge offset":  {{Offset: 1<<64 - 1, Data: []byte("x")}},
	} {
		if _, err := chunk.Reassemble(frags, 11); !errors.Is(err, chunk.ErrTrace) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNames(t *testing.T) {
	names := map[chunk.Type]string{chunk.TypeHeartbeat: "Heartbeat", chunk.TypeMetrics: "Metrics",
		chunk.TypeFaultRecord: "FaultRecord", chunk.TypeTraceFragment: "TraceFragment",
		chunk.TypeRebootReason: "RebootReason", chunk.TypeDeviceInfo: "DeviceInfo", chunk.TypeOtaRequest: "OtaRequest",
		0: "Type(0x00)", 0x42: "Type(0x42)"}
	for ty, want := range names {
		if ty.String() != want || ty.Valid() != !strings.HasPrefix(want, "Type(") {
			t.Errorf("%d: %q valid=%v", ty, ty.String(), ty.Valid())
		}
	}
	for r, want := range map[uint8]string{0: "Unknown", 1: "PowerOnReset", 4: "HardFault", 12: "UserRequested",
		13: "Unknown"} {
		if got := chunk.RebootReasonName(r); got != want {
			t.Errorf("reboot %d: %s", r, got)
		}
	}
	for f, want := range map[uint8]string{0: "HardFault", 1: "MemFault", 2: "BusFault", 3: "UsageFault", 4: "Unknown"} {
		if got := chunk.FaultTypeName(f); got != want {
			t.Errorf("fault %d: %s", f, got)
		}
	}
}
