package chunk_test

import (
	"bytes"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

var seeds = []string{"v01_device_info", "v02_heartbeat", "v04_reboot_reason", "v05_metrics", "v06_ota_request",
	"v07_fault_record", "v08_trace_fragment", "v09_minimal", "v10_encrypted_heartbeat", "v11_compressed_heartbeat",
	"v13_batch"}

// FuzzDecodeStream: any body decodes without panicking, frames re-encode to their bytes, and frames and bad spans
// tile the body; every payload parser survives every frame.
func FuzzDecodeStream(f *testing.F) {
	for _, s := range seeds {
		f.Add(vector(f, s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		frames, bad := chunk.DecodeStream(body, nil, nil)
		coverage(t, body, frames, bad)
		var ms []chunk.Metric
		for _, fr := range frames {
			chunk.ParseHeartbeat(fr.Payload)
			ms, _ = chunk.ParseMetrics(ms[:0], fr.Payload)
			chunk.ParseFault(fr.Payload)
			chunk.ParseReboot(fr.Payload)
			chunk.ParseDeviceInfo(fr.Payload)
			chunk.ParseOtaRequest(fr.Payload)
			chunk.ParseTraceFragment(fr.Payload)
			chunk.Decompress(fr.Chunk)
		}
	})
}

// FuzzRLE: compression round-trips and decompression of anything is safe.
func FuzzRLE(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 4})
	f.Add([]byte{0xff, 0xff, 0xff, 1, 2})
	f.Add(bytes.Repeat([]byte{7}, 300))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := chunk.RLECompress(nil, in)
		out, err := chunk.RLEDecompress(nil, c, len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip of %x: %x %v", in, out, err)
		}
		chunk.RLEDecompress(nil, in, 4096)
		if len(in) <= 0xFFFF {
			ch := chunk.Chunk{Type: chunk.TypeMetrics, Payload: in}
			if comp, ok := chunk.CompressChunk(ch); ok {
				back, err := chunk.Decompress(comp)
				if err != nil || !bytes.Equal(back.Payload, in) {
					t.Fatalf("chunk round trip: %v", err)
				}
			}
		}
	})
}

// FuzzDecrypt: arbitrary ciphertext never panics or passes as plaintext; encryption round-trips.
func FuzzDecrypt(f *testing.F) {
	for _, s := range seeds {
		f.Add(vector(f, s), uint32(0))
	}
	c, err := chunk.NewCipher(testKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, n uint32) {
		enc := chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagEncrypted, Payload: payload}
		if out, err := c.Decrypt(enc); err == nil && out.Flags&chunk.FlagEncrypted != 0 {
			t.Fatal("decrypted chunk still flagged encrypted")
		}
		if len(payload) > 0xFFFF-21 {
			return
		}
		sealed, err := c.Encrypt(chunk.Chunk{Type: chunk.TypeMetrics, Payload: payload}, chunk.CounterNonce(n))
		if err != nil {
			t.Fatal(err)
		}
		open, err := c.Decrypt(sealed)
		if err != nil || !bytes.Equal(open.Payload, payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
