// Package loadgen simulates fleets of ferrite devices posting telemetry, to measure ingest throughput end to end
// over HTTP and the storage ceiling without HTTP.
package loadgen

import (
	"fmt"
	"math/rand/v2"

	"github.com/lodestone-fleet/lodestone/chunk"
)

// Fleet describes the simulated devices and what a session carries.
type Fleet struct {
	Devices           int     // distinct devices
	PerRequest        int     // sessions per request: 1 is a device posting directly, more is a gateway batch
	MetricsPerSession int     // metric samples per session (the SDK sends at most 32)
	RebootRate        float64 // share of sessions that report a reboot
	FaultRate         float64 // share of sessions that carry a fault record
	Seed              uint64
}

var metricKeys = []string{"temp_c", "battery_mv", "rssi_dbm", "heap_free", "loop_us", "tx_packets", "rx_packets",
	"uptime_s", "cpu_pct", "errors", "flash_writes", "sensor_lat"}

// Body is one pre-encoded request body.
type Body struct {
	Data   []byte
	Chunks int
}

// Bodies encodes n request bodies. Each holds PerRequest sessions of distinct devices laid out the way the SDK
// sends a session: DeviceInfo, RebootReason (sometimes), FaultRecord (sometimes), Metrics..., Heartbeat.
func (f Fleet) Bodies(n int) []Body {
	rng := rand.New(rand.NewPCG(f.Seed, 0x10de5)) //nolint:gosec // load shape, not security
	seq := make([]uint16, f.Devices)
	out := make([]Body, 0, n)
	next := 0
	for range n {
		var b Body
		for range f.PerRequest {
			dev := next % f.Devices
			next++
			var chunks int
			b.Data, chunks = f.session(b.Data, dev, &seq[dev], rng)
			b.Chunks += chunks
		}
		out = append(out, b)
	}
	return out
}

func (f Fleet) session(dst []byte, dev int, seq *uint16, rng *rand.Rand) ([]byte, int) {
	n := 0
	emit := func(t chunk.Type, flags chunk.Flags, payload []byte) {
		dst = chunk.Chunk{Type: t, Flags: flags, Seq: *seq, Payload: payload}.AppendEncode(dst)
		*seq++
		n++
	}
	info := chunk.DeviceInfo{DeviceID: fmt.Sprintf("lg-%06d", dev), FirmwareVersion: "1.4.2",
		BuildID: 0xC0FFEE00 + uint64(dev%4)}
	emit(chunk.TypeDeviceInfo, chunk.FlagLast, info.AppendPayload(nil))
	if rng.Float64() < f.RebootRate {
		r := chunk.Reboot{Reason: uint8(rng.IntN(13)), BootSequence: uint32(rng.IntN(1000))}
		emit(chunk.TypeRebootReason, chunk.FlagLast, r.AppendPayload(nil))
	}
	if rng.Float64() < f.FaultRate {
		ft := chunk.Fault{Type: uint8(rng.IntN(4)), PC: 0x08000000 + uint32(rng.IntN(0x10000))&^1,
			LR: 0x08000000 + uint32(rng.IntN(0x10000)), SP: 0x20003F00, CFSR: 0x400}
		for i := range ft.Stack {
			ft.Stack[i] = rng.Uint32()
		}
		emit(chunk.TypeFaultRecord, chunk.FlagLast, ft.AppendPayload(nil))
	}
	// Pack metrics the way the SDK does: as many entries as fit in 248 bytes per chunk.
	var pending []chunk.Metric
	size := 1
	flush := func(last bool) {
		if len(pending) == 0 {
			return
		}
		var flags chunk.Flags
		if last {
			flags = chunk.FlagLast
		}
		emit(chunk.TypeMetrics, flags, chunk.AppendMetricsPayload(nil, pending))
		pending, size = pending[:0], 1
	}
	for i := range f.MetricsPerSession {
		key := metricKeys[i%len(metricKeys)]
		var m chunk.Metric
		switch i % 3 {
		case 0:
			m = chunk.CounterMetric(key, rng.Uint32N(100000), uint64(i)*1000)
		case 1:
			m = chunk.GaugeMetric(key, rng.Float32()*100, uint64(i)*1000)
		default:
			m = chunk.HistogramMetric(key, rng.Float32(), 1+rng.Float32()*10, uint64(i)*1000)
		}
		entry := 18 + len(key)
		if size+entry > chunk.MaxSDKPayload-2 {
			flush(false)
		}
		pending = append(pending, m)
		size += entry
	}
	flush(true)
	hb := chunk.Heartbeat{UptimeTicks: uint64(rng.IntN(1 << 30)), MetricsCount: uint32(f.MetricsPerSession)}
	emit(chunk.TypeHeartbeat, chunk.FlagLast, hb.AppendPayload(nil))
	return dst, n
}
