package chunk_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// realisticBody is ten SDK sessions (DeviceInfo, Metrics x2, Heartbeat): about 40 chunks.
func realisticBody() []byte {
	var b []byte
	for i := range 10 {
		b = chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: chunk.DeviceInfo{
			DeviceID: "sensor-0001", FirmwareVersion: "1.4.2", BuildID: uint64(i)}.AppendPayload(nil)}.AppendEncode(b)
		var ms []chunk.Metric
		for k := range 6 {
			ms = append(ms, chunk.GaugeMetric("temperature_c", float32(k), uint64(k)))
		}
		p := chunk.AppendMetricsPayload(nil, ms)
		b = chunk.Chunk{Type: chunk.TypeMetrics, Payload: p}.AppendEncode(b)
		b = chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagLast, Payload: p}.AppendEncode(b)
		b = chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast,
			Payload: chunk.Heartbeat{UptimeTicks: 1}.AppendPayload(nil)}.AppendEncode(b)
	}
	return b
}

func BenchmarkDecodeStream(b *testing.B) {
	body := realisticBody()
	var frames []chunk.Frame
	var bad []chunk.BadSpan
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		frames, bad = chunk.DecodeStream(body, frames[:0], bad[:0])
	}
	b.ReportMetric(float64(len(frames))*float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
}

func BenchmarkCRC16(b *testing.B) {
	buf := make([]byte, 256)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		chunk.CRC16(buf)
	}
}

func BenchmarkParseMetrics(b *testing.B) {
	var ms []chunk.Metric
	for k := range 8 {
		ms = append(ms, chunk.CounterMetric("packets_rx", uint32(k), uint64(k)))
	}
	p := chunk.AppendMetricsPayload(nil, ms)
	b.ReportAllocs()
	for b.Loop() {
		ms, _ = chunk.ParseMetrics(ms[:0], p)
	}
}
