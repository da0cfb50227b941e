package chunk_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ingest/ingesttest"
)

// frameVectors are the §9 vectors that hold wire bytes (V0 and V12 are CRC and RLE cases).
var frameVectors = []string{"v01_device_info", "v02_heartbeat", "v03_heartbeat_legacy", "v04_reboot_reason",
	"v05_metrics", "v06_ota_request", "v07_fault_record", "v08_trace_fragment", "v09_minimal",
	"v10_encrypted_heartbeat", "v11_compressed_heartbeat", "v13_batch"}

// FuzzDecodeStream: any body decodes without panicking, exactly as the obvious try-every-position decoder
// would; frames re-encode to their bytes; frames and spans tile the body; every parser survives every frame.
func FuzzDecodeStream(f *testing.F) {
	for _, name := range frameVectors {
		f.Add(vector(f, name))
	}
	v13 := vector(f, "v13_batch")
	f.Add(join([]byte{0xEC}, v13, []byte{0x42}))
	f.Add(hostileBody(700, 300)) // long false candidates: exercises the prefix-table CRC path
	c, err := chunk.NewCipher(testKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		frames, bad := chunk.DecodeStream(body, nil, nil)
		coverage(t, body, frames, bad)
		sameAsReference(t, body)
		var ms []chunk.Metric
		for _, fr := range frames {
			chunk.ParseHeartbeat(fr.Payload)
			ms, _ = chunk.ParseMetrics(ms[:0], fr.Payload)
			chunk.ParseFault(fr.Payload)
			chunk.ParseReboot(fr.Payload)
			chunk.ParseDeviceInfo(fr.Payload)
			chunk.ParseOtaRequest(fr.Payload)
			if tf, err := chunk.ParseTraceFragment(fr.Payload); err == nil {
				chunk.Reassemble([]chunk.TraceFragment{tf, tf}, 1<<16)
			}
			c.Decrypt(fr.Chunk)
			chunk.Decompress(fr.Chunk)
		}
	})
}

// FuzzRLE: compression round-trips, CompressChunk obeys the SDK's rule, and decompressing anything is safe and
// bounded.
func FuzzRLE(f *testing.F) {
	for _, tc := range vectorCases(f, "v12_rle") {
		f.Add(unhex(f, tc[0]))
		f.Add(unhex(f, tc[1]))
	}
	for _, name := range frameVectors {
		f.Add(vector(f, name))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		comp := chunk.RLECompress(nil, in)
		out, err := chunk.RLEDecompress(nil, comp, len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip of %x: %x %v", in, out, err)
		}
		if out, err := chunk.RLEDecompress(nil, in, 1024); len(out) > 1024 || (err == nil && len(out) > 255*len(in)) {
			t.Fatalf("decompressed %d bytes from %d", len(out), len(in))
		}
		if len(in) > 0xFFFF {
			return
		}
		ch := chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagLast, Payload: in}
		packed, ok := chunk.CompressChunk(ch)
		if ok != (len(in) > 0 && len(comp) < len(in) && len(comp)+2 <= chunk.MaxSDKPayload) {
			t.Fatalf("CompressChunk(%x) = %v", in, ok)
		}
		back, err := chunk.Decompress(packed)
		if err != nil || !bytes.Equal(back.Payload, in) || back.Flags != chunk.FlagLast {
			t.Fatalf("chunk round trip: %+v %v", back, err)
		}
		chunk.Decompress(chunk.Chunk{Flags: chunk.FlagCompressed, Payload: in})
	})
}

// FuzzDecrypt: arbitrary encrypted payloads never panic and never come back as plaintext; encryption
// round-trips.
func FuzzDecrypt(f *testing.F) {
	for _, name := range frameVectors {
		f.Add(vector(f, name), uint32(0))
	}
	v10, _, err := chunk.Decode(vector(f, "v10_encrypted_heartbeat"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v10.Payload, uint32(1))
	c, err := chunk.NewCipher(testKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, n uint32) {
		enc := chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagEncrypted, Seq: 3, Payload: payload}
		if out, err := c.Decrypt(enc); err == nil {
			// Only possible with a valid tag, which the fuzzer cannot forge; when it happens it is plaintext.
			if out.Flags&chunk.FlagEncrypted != 0 || len(out.Payload) != len(payload)-21 {
				t.Fatalf("bad decrypt result %+v", out)
			}
		} else if out.Flags&chunk.FlagEncrypted == 0 {
			t.Fatal("failed decrypt cleared the flag")
		}
		if len(payload) > 0xFFFF-21 {
			return
		}
		sealed, err := c.Encrypt(chunk.Chunk{Type: chunk.TypeMetrics, Seq: 3, Payload: payload}, chunk.CounterNonce(n))
		if err != nil || len(sealed.Payload) != len(payload)+21 || sealed.Flags != chunk.FlagEncrypted {
			t.Fatalf("encrypt: %+v %v", sealed, err)
		}
		// Through the wire and back.
		wire, _, err := chunk.Decode(sealed.Encode())
		if err != nil {
			t.Fatal(err)
		}
		open, err := c.Decrypt(wire)
		if err != nil || !bytes.Equal(open.Payload, payload) || open.Flags != 0 || open.Seq != 3 {
			t.Fatalf("round trip: %+v %v", open, err)
		}
	})
}

// FuzzStoredFrame builds a well-framed chunk (the CRC is right, so it is decoded rather than skipped) of any type,
// flags and payload, puts it between two valid sessions of one device, and ingests the body into SQLite and, when
// configured, PostgreSQL: no frame may make storage fail, and the valid chunks beside it are stored.
func FuzzStoredFrame(f *testing.F) {
	for _, name := range frameVectors {
		fr, _, err := chunk.Decode(vector(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(fr.Type), uint8(fr.Flags), fr.Payload)
	}
	f.Add(uint8(chunk.TypeTraceFragment), uint8(chunk.FlagLast), make([]byte, 8))
	f.Add(uint8(chunk.TypeDeviceInfo), uint8(chunk.FlagLast), []byte{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(chunk.TypeMetrics), uint8(chunk.FlagLast), chunk.AppendMetricsPayload(nil,
		[]chunk.Metric{chunk.CounterMetric("a\x00", 1, 1), chunk.CounterMetric("\xff", 1, 1)}))
	backends := ingesttest.Open(f)
	hb := chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast,
		Payload: chunk.Heartbeat{UptimeTicks: 1}.AppendPayload(nil)}.Encode()
	n := 0
	f.Fuzz(func(t *testing.T, typ, flags uint8, payload []byte) {
		if len(payload) > 4096 {
			payload = payload[:4096]
		}
		n++
		dev := fmt.Sprintf("fz-%d", n)
		info := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
			Payload: chunk.DeviceInfo{DeviceID: dev, FirmwareVersion: "1"}.AppendPayload(nil)}.Encode()
		// An unknown type cannot be framed by Chunk.Encode's callers in practice, but the bytes can arrive.
		fuzzed := chunk.Chunk{Type: chunk.Type(typ), Flags: chunk.Flags(flags), Payload: payload}.Encode()
		body := join(info, hb, fuzzed, info, hb)
		for _, b := range backends {
			res, err := b.Service.Ingest(context.Background(), ingest.Request{Body: body})
			if err != nil {
				t.Fatalf("%s: type 0x%02X flags 0x%02X payload %x: %v", b.Name, typ, flags, payload, err)
			}
			if res.Stored < 4 {
				t.Fatalf("%s: %d chunks stored, want the 4 valid ones at least: %v", b.Name, res.Stored, res.Errors)
			}
			hbs, err := b.Store.FindHeartbeats(context.Background(), lodestone.TelemetryFilter{DeviceID: dev})
			if err != nil || len(hbs) < 2 {
				t.Fatalf("%s: %d heartbeats of %s stored: %v", b.Name, len(hbs), dev, err)
			}
		}
	})
}
