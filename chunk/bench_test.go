package chunk_test

import (
	"fmt"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// realisticBody is what a gateway forwards: ten SDK sessions (DeviceInfo, two Metrics chunks of six entries,
// Heartbeat), 40 chunks.
func realisticBody() []byte {
	var b []byte
	var seq uint16
	add := func(t chunk.Type, p []byte) {
		b = chunk.Chunk{Type: t, Flags: chunk.FlagLast, Seq: seq, Payload: p}.AppendEncode(b)
		seq++
	}
	for i := range 10 {
		add(chunk.TypeDeviceInfo, chunk.DeviceInfo{DeviceID: fmt.Sprintf("sensor-%04d", i), FirmwareVersion: "1.4.2",
			BuildID: 0xC0FFEE}.AppendPayload(nil))
		for range 2 {
			var ms []chunk.Metric
			for k := range 6 {
				ms = append(ms, chunk.GaugeMetric(fmt.Sprintf("temperature_%d", k), float32(k)*1.5, uint64(k)))
			}
			add(chunk.TypeMetrics, chunk.AppendMetricsPayload(nil, ms))
		}
		add(chunk.TypeHeartbeat, chunk.Heartbeat{UptimeTicks: 123456, MetricsCount: 12}.AppendPayload(nil))
	}
	return b
}

func BenchmarkDecodeStream(b *testing.B) {
	body := realisticBody()
	frames, bad := chunk.DecodeStream(body, nil, nil)
	if len(frames) != 40 || len(bad) != 0 {
		b.Fatalf("%d frames, %d bad", len(frames), len(bad))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		frames, bad = chunk.DecodeStream(body, frames[:0], bad[:0])
	}
	b.ReportMetric(float64(len(frames))*float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
}

// BenchmarkDecodeStreamHostile is the worst case found for re-sync: a 2 MiB body (the ingest limit) alternating
// minimal chunks with headers that claim 65535-byte payloads. It must stay within a small factor of a clean body.
func BenchmarkDecodeStreamHostile(b *testing.B) {
	body := hostileBody(2<<20, 65535)
	var frames []chunk.Frame
	var bad []chunk.BadSpan
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		frames, bad = chunk.DecodeStream(body, frames[:0], bad[:0])
	}
}

func BenchmarkCRC16(b *testing.B) {
	for _, n := range []int{34, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				chunk.CRC16(buf)
			}
		})
	}
}

func BenchmarkParseMetrics(b *testing.B) {
	var ms []chunk.Metric
	for k := range 8 {
		ms = append(ms, chunk.CounterMetric(fmt.Sprintf("packets_rx_%d", k), uint32(k), uint64(k)))
	}
	p := chunk.AppendMetricsPayload(nil, ms)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		ms, _ = chunk.ParseMetrics(ms[:0], p)
	}
}
