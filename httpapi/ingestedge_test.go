package httpapi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// edgeChunk is one chunk with a field at its edge, and whether ingest stores it (200) or reports it (207).
type edgeChunk struct {
	name   string
	frame  []byte
	stored bool
}

func edgeFrame(t chunk.Type, flags chunk.Flags, p []byte) []byte {
	return chunk.Chunk{Type: t, Flags: flags, Seq: 9, Payload: p}.Encode()
}

func edgeInfo(id, fw string, build uint64) []byte {
	return edgeFrame(chunk.TypeDeviceInfo, chunk.FlagLast,
		chunk.DeviceInfo{DeviceID: id, FirmwareVersion: fw, BuildID: build}.AppendPayload(nil))
}

func edgeMetrics(ms ...chunk.Metric) []byte {
	return edgeFrame(chunk.TypeMetrics, chunk.FlagLast, chunk.AppendMetricsPayload(nil, ms))
}

func edgeTrace(flags chunk.Flags, off uint64, data []byte) []byte {
	return edgeFrame(chunk.TypeTraceFragment, flags, chunk.TraceFragment{Offset: off, Data: data}.AppendPayload(nil))
}

func edgeFill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// edgeChunks lists every chunk type with each field at its edge: empty, NUL, other control characters, invalid
// UTF-8, the longest the format carries, extreme numbers, and payloads one byte short of and exactly at their
// size.
func edgeChunks(t *testing.T) []edgeChunk {
	str255, bad255 := strings.Repeat("x", 255), string(edgeFill(255, 0xFF))
	euro85 := strings.Repeat("€", 85) // 255 bytes of three-byte characters
	metric := func(key string) chunk.Metric { return chunk.CounterMetric(key, 7, 1) }
	raw := chunk.Metric{Key: "raw", Type: 0xFF, Value: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Ticks: math.MaxUint64}
	nulInfo, ok := chunk.CompressChunk(chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
		Payload: chunk.DeviceInfo{DeviceID: strings.Repeat("\x00", 60)}.AppendPayload(nil)})
	if !ok {
		t.Fatal("NUL DeviceInfo does not compress")
	}
	countOnly := []byte{255}
	return []edgeChunk{
		{"info/id-empty", edgeInfo("", "1", 1), false},
		{"info/id-nul", edgeInfo("\x00", "1", 1), false},
		{"info/id-inner-nul", edgeInfo("a\x00b", "1", 1), false},
		{"info/id-newline", edgeInfo("dev\n", "1", 1), false},
		{"info/id-del", edgeInfo("dev\x7f", "1", 1), false},
		{"info/id-invalid-utf8", edgeInfo("\xff\xfe\xc3", "1", 1), true},
		{"info/id-max", edgeInfo(str255, "1", 1), true},
		{"info/id-max-invalid-utf8", edgeInfo(bad255, "1", 1), true},
		{"info/id-max-multibyte", edgeInfo(euro85, "1", 1), true},
		{"info/fw-empty", edgeInfo("fw-empty", "", 0), true},
		{"info/fw-nul", edgeInfo("fw-nul", "1.\x00", 1), false},
		{"info/fw-invalid-utf8", edgeInfo("fw-bad", "\xff1.0", 1), true},
		{"info/fw-max", edgeInfo("fw-max", str255, math.MaxUint64), true},
		{"info/fw-max-invalid-utf8", edgeInfo("fw-max-bad", bad255, math.MaxUint64), true},
		{"info/payload-empty", edgeFrame(chunk.TypeDeviceInfo, chunk.FlagLast, nil), false},
		{"info/payload-truncated", edgeFrame(chunk.TypeDeviceInfo, chunk.FlagLast, []byte{5, 'a'}), false},
		{"info/compressed-nul", nulInfo.Encode(), false},

		{"metrics/key-empty", edgeMetrics(metric("")), false},
		{"metrics/key-nul", edgeMetrics(metric("\x00")), false},
		{"metrics/key-inner-nul", edgeMetrics(metric("k\x00ey")), false},
		{"metrics/key-tab", edgeMetrics(metric("k\tey")), false},
		{"metrics/key-invalid-utf8", edgeMetrics(metric("k\xffey")), true},
		{"metrics/key-max", edgeMetrics(metric(str255)), true},
		{"metrics/key-max-invalid-utf8", edgeMetrics(metric(bad255)), true},
		{"metrics/key-max-multibyte", edgeMetrics(metric(euro85)), true},
		{"metrics/values-extreme", edgeMetrics(chunk.GaugeMetric("nan", float32(math.NaN()), 0),
			chunk.GaugeMetric("inf", float32(math.Inf(-1)), math.MaxUint64),
			chunk.HistogramMetric("h", float32(math.Inf(1)), float32(math.NaN()), 0),
			chunk.CounterMetric("c", math.MaxUint32, 0), raw), true},
		{"metrics/count-zero", edgeFrame(chunk.TypeMetrics, chunk.FlagLast, []byte{0}), true},
		{"metrics/count-without-entries", edgeFrame(chunk.TypeMetrics, chunk.FlagLast, countOnly), false},
		{"metrics/payload-empty", edgeFrame(chunk.TypeMetrics, chunk.FlagLast, nil), false},
		{"metrics/good-beside-nul", edgeMetrics(metric("good-a"), metric("\x00bad"), metric("good-b")), false},

		{"heartbeat/payload-empty", edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, nil), false},
		{"heartbeat/payload-19", edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, edgeFill(19, 0)), false},
		{"heartbeat/payload-20", edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, edgeFill(20, 0)), true},
		{"heartbeat/all-ones", edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, edgeFill(24, 0xFF)), true},
		{"heartbeat/payload-max", edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, edgeFill(chunk.MaxSDKPayload, 0xFF)), true},

		{"fault/payload-empty", edgeFrame(chunk.TypeFaultRecord, chunk.FlagLast, nil), false},
		{"fault/payload-148", edgeFrame(chunk.TypeFaultRecord, chunk.FlagLast, edgeFill(148, 0)), false},
		{"fault/zeros", edgeFrame(chunk.TypeFaultRecord, chunk.FlagLast, edgeFill(chunk.FaultPayloadSize, 0)), true},
		{"fault/all-ones", edgeFrame(chunk.TypeFaultRecord, chunk.FlagLast, edgeFill(chunk.MaxSDKPayload, 0xFF)), true},

		{"reboot/payload-9", edgeFrame(chunk.TypeRebootReason, chunk.FlagLast, edgeFill(9, 0)), false},
		{"reboot/zeros", edgeFrame(chunk.TypeRebootReason, chunk.FlagLast, edgeFill(10, 0)), true},
		{"reboot/all-ones", edgeFrame(chunk.TypeRebootReason, chunk.FlagLast, edgeFill(10, 0xFF)), true},

		{"ota/payload-13", edgeFrame(chunk.TypeOtaRequest, chunk.FlagLast, edgeFill(13, 0)), false},
		{"ota/zeros", edgeFrame(chunk.TypeOtaRequest, chunk.FlagLast, edgeFill(14, 0)), true},
		{"ota/all-ones", edgeFrame(chunk.TypeOtaRequest, chunk.FlagLast, edgeFill(14, 0xFF)), true},

		{"trace/payload-empty", edgeFrame(chunk.TypeTraceFragment, chunk.FlagLast, nil), false},
		{"trace/payload-7", edgeFrame(chunk.TypeTraceFragment, chunk.FlagLast, edgeFill(7, 0)), false},
		{"trace/offset-only", edgeFrame(chunk.TypeTraceFragment, 0, edgeFill(8, 0)), false},
		{"trace/offset-only-last", edgeFrame(chunk.TypeTraceFragment, chunk.FlagLast, edgeFill(8, 0)), false},
		{"trace/one-byte-last", edgeTrace(chunk.FlagLast, 0, []byte{0}), true},
		{"trace/nul-data-max", edgeTrace(chunk.FlagLast, 0, edgeFill(chunk.MaxSDKPayload-8, 0)), true},
		{"trace/offset-at-limit-end", edgeTrace(0, lodestone.MaxTraceSize-1, []byte{1}), true},
		{"trace/offset-past-limit", edgeTrace(0, lodestone.MaxTraceSize, []byte{1}), false},
		{"trace/offset-max", edgeTrace(chunk.FlagLast, math.MaxUint64, []byte{1}), false},

		{"frame/unknown-type", append(edgeFrame(chunk.TypeHeartbeat, 0, nil)[:2:2], 0x08, 0, 0, 0, 0, 0, 0, 0), false},
		{"frame/compressed-garbage", edgeFrame(chunk.TypeHeartbeat, chunk.FlagCompressed, []byte{1, 0, 0xFF}), false},
	}
}

// TestIngestEdgesNeverPoison posts every chunk type with each field at its edge, between valid chunks, to both
// stores: no answer is a 5xx (a property of the data is never "retry later"), a chunk that cannot be stored is
// reported (207) and the valid chunks beside it are stored.
func TestIngestEdgesNeverPoison(t *testing.T) {
	for _, tc := range ingestBackends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			e := newFerriteEnv(t, store, authOpts{apiKey: "fleet-key"})
			ctx := context.Background()
			for i, c := range edgeChunks(t) {
				dev := fmt.Sprintf("edge-%02d", i)
				hb := edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, chunk.Heartbeat{UptimeTicks: 1}.AppendPayload(nil))
				// The edge chunk sits between two valid sessions of dev; the second repeats the DeviceInfo so that
				// an unusable DeviceInfo cannot take the chunks after it anywhere else.
				body := bytes.Join([][]byte{edgeInfo(dev, "1.0", 1), hb, edgeMetrics(edgeMetric()), c.frame,
					edgeInfo(dev, "1.0", 1), hb}, nil)
				a := e.do("POST", "/ingest/chunks", apiKey("fleet-key"), body)
				want := 207
				if c.stored {
					want = 200
				}
				if a.status != want {
					t.Errorf("%s: status %d, want %d: %s", c.name, a.status, want, a.raw)
					continue
				}
				if a.body["chunks_received"] == nil {
					t.Errorf("%s: not ferrite's answer: %s", c.name, a.raw)
				}
				hbs, err := store.FindHeartbeats(ctx, lodestone.TelemetryFilter{DeviceID: dev})
				if err != nil || len(hbs) < 2 {
					t.Errorf("%s: %d heartbeats beside it stored, want at least 2 (%v)", c.name, len(hbs), err)
				}
				ms, err := store.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{
					DeviceID: dev}})
				if err != nil {
					t.Fatal(err)
				}
				keys := map[string]bool{}
				for _, m := range ms {
					keys[m.Key] = true
				}
				if !keys["ok"] {
					t.Errorf("%s: the valid metric beside it was not stored: %v", c.name, keys)
				}
				if c.name == "metrics/good-beside-nul" && (!keys["good-a"] || !keys["good-b"] || len(keys) != 3) {
					t.Errorf("%s: entries beside the bad key: %v", c.name, keys)
				}
			}
			// Text at its edge is stored as ferrite's lossy decoding reads it, on both stores alike.
			for _, id := range []string{strings.Repeat("x", 255), strings.Repeat("\uFFFD", 255),
				strings.Repeat("€", 85), "\uFFFD\uFFFD\uFFFD"} {
				if _, err := store.FindDeviceByID(ctx, id); err != nil {
					t.Errorf("device %q: %v", id, err)
				}
			}
			if d, err := store.FindDeviceByID(ctx, "fw-max-bad"); err != nil ||
				d.FirmwareVersion != strings.Repeat("\uFFFD", 255) || d.BuildID != math.MaxUint64 {
				t.Errorf("fw-max-bad: %+v %v", d, err)
			}
			// A DeviceInfo whose firmware version is refused still names its device; what it runs is not stored.
			hb := edgeFrame(chunk.TypeHeartbeat, chunk.FlagLast, chunk.Heartbeat{UptimeTicks: 1}.AppendPayload(nil))
			e.do("POST", "/ingest/chunks", apiKey("fleet-key"), append(edgeInfo("fw-nul-2", "1.\x00", 1), hb...)).
				must(t, 207)
			if d, err := store.FindDeviceByID(ctx, "fw-nul-2"); err != nil || d.FirmwareVersion != "" {
				t.Errorf("fw-nul-2: %+v %v", d, err)
			}
			if hbs, err := store.FindHeartbeats(ctx, lodestone.TelemetryFilter{DeviceID: "fw-nul-2"}); err != nil ||
				len(hbs) != 1 {
				t.Errorf("fw-nul-2 heartbeats: %d %v", len(hbs), err)
			}
		})
	}
}

func edgeMetric() chunk.Metric { return chunk.CounterMetric("ok", 1, 1) }

// TestIngestOffsetOnlyTraceFragmentIsReported is the reproduction: a TraceFragment of only its 8-byte
// offset, between valid chunks, was a store error answered 503 on every retry; now it is that chunk's error and
// the rest is stored.
func TestIngestOffsetOnlyTraceFragmentIsReported(t *testing.T) {
	for _, tc := range ingestBackends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			e := newFerriteEnv(t, store, authOpts{})
			off := make([]byte, 8)
			binary.LittleEndian.PutUint64(off, 0)
			body := bytes.Join([][]byte{edgeInfo("tracer", "1.0", 1), edgeFrame(chunk.TypeTraceFragment,
				chunk.FlagLast, off), edgeMetrics(edgeMetric())}, nil)
			for range 2 {
				a := e.do("POST", "/ingest/chunks", nil, body).must(t, 207)
				if !strings.Contains(a.raw, "carries no data") {
					t.Fatalf("answer %s", a.raw)
				}
			}
			ms, err := store.FindMetrics(context.Background(), lodestone.MetricFilter{
				TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "tracer"}})
			if err != nil || len(ms) != 2 {
				t.Fatalf("metrics beside the fragment: %d %v", len(ms), err)
			}
		})
	}
}
