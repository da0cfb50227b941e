package chunk

import (
	"encoding/binary"
	"math"
	"strconv"
)

// MetricType is the kind of a metric entry; it decides how the eight value bytes are read.
type MetricType uint8

// Metric types (spec §1.5, type 0x02). Other values occur on the wire and are kept as raw bytes.
const (
	MetricCounter   MetricType = 0 // u32 then four zero bytes
	MetricGauge     MetricType = 1 // f32 then four zero bytes
	MetricHistogram MetricType = 2 // f32 min, f32 max (sum and count are not transmitted)
)

// String returns the name ferrite's value_json uses for the type ("counter", "gauge", "histogram"), or
// "type(N)" for a value the SDK does not define, so logs never show a bare number.
func (t MetricType) String() string {
	switch t {
	case MetricCounter:
		return "counter"
	case MetricGauge:
		return "gauge"
	case MetricHistogram:
		return "histogram"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Metric is one entry of a Metrics payload. The value is kept as the eight wire bytes so that unknown types
// survive unchanged; the accessors read it per type.
type Metric struct {
	Key   string
	Type  MetricType
	Value [8]byte // raw value bytes as on the wire
	Ticks uint64  // device timestamp
}

// Counter reads a counter's value (the first four value bytes).
func (m Metric) Counter() uint32 { return binary.LittleEndian.Uint32(m.Value[:]) }

// Gauge reads a gauge's value (the first four value bytes as an f32).
func (m Metric) Gauge() float32 { return math.Float32frombits(binary.LittleEndian.Uint32(m.Value[:])) }

// HistogramMin reads a histogram's minimum (the first four value bytes).
func (m Metric) HistogramMin() float32 { return m.Gauge() }

// HistogramMax reads a histogram's maximum (the last four value bytes).
func (m Metric) HistogramMax() float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(m.Value[4:]))
}

// CounterMetric builds a counter entry as the SDK encodes it, for simulators and tests.
func CounterMetric(key string, v uint32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricCounter, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], v)
	return m
}

// GaugeMetric builds a gauge entry as the SDK encodes it, for simulators and tests.
func GaugeMetric(key string, v float32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricGauge, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], math.Float32bits(v))
	return m
}

// HistogramMetric builds a histogram entry as the SDK encodes it (only min and max travel), for simulators and
// tests.
func HistogramMetric(key string, min, max float32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricHistogram, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], math.Float32bits(min))
	binary.LittleEndian.PutUint32(m.Value[4:], math.Float32bits(max))
	return m
}

// metricFixed is the size of an entry without its key: key_len, type, value, ticks.
const metricFixed = 1 + 1 + 8 + 8

// ParseMetrics appends the entries of one Metrics payload ([count u8] then count entries) to dst, so a caller can
// reuse one slice across chunks. Where ferrite silently stops at a truncated entry, this returns the entries
// before it together with an ErrPayload saying which entry; a count larger than the entries present is reported
// the same way, and an empty payload is an error. Keys with invalid UTF-8 get U+FFFD as in ferrite.
func ParseMetrics(dst []Metric, p []byte) ([]Metric, error) {
	if len(p) == 0 {
		return dst, payloadErr("metrics payload is empty, need at least the count byte")
	}
	count, off := int(p[0]), 1
	for i := 1; i <= count; i++ {
		rest := len(p) - off
		if rest == 0 {
			return dst, payloadErr("metrics: payload ends before entry %d of %d", i, count)
		}
		k := int(p[off])
		if rest < metricFixed+k {
			return dst, payloadErr("metrics: entry %d of %d is truncated: needs %d bytes, %d left", i, count,
				metricFixed+k, rest)
		}
		e := p[off+1:]
		m := Metric{Key: lossyString(e[:k]), Type: MetricType(e[k]), Ticks: binary.LittleEndian.Uint64(e[k+9:])}
		copy(m.Value[:], e[k+1:k+9])
		dst = append(dst, m)
		off += metricFixed + k
	}
	return dst, nil
}

// AppendMetricsPayload appends a Metrics payload holding ms, for simulators and tests. The format cannot hold
// more than 255 entries or keys over 255 bytes, so extra entries are dropped and long keys cut; keeping a payload
// within MaxSDKPayload, as the SDK does, is the caller's job.
func AppendMetricsPayload(dst []byte, ms []Metric) []byte {
	ms = ms[:min(len(ms), 255)]
	dst = append(dst, byte(len(ms)))
	for _, m := range ms {
		dst = appendShortString(dst, m.Key)
		dst = append(dst, byte(m.Type))
		dst = append(dst, m.Value[:]...)
		dst = binary.LittleEndian.AppendUint64(dst, m.Ticks)
	}
	return dst
}
