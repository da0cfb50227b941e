package chunk

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// MetricType is the kind of a metric entry.
type MetricType uint8

// Metric types.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

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

// Metric is one entry of a Metrics payload, its value kept as the eight wire bytes.
type Metric struct {
	Key   string
	Type  MetricType
	Value [8]byte
	Ticks uint64
}

// Counter reads a counter value.
func (m Metric) Counter() uint32 { return binary.LittleEndian.Uint32(m.Value[:]) }

// Gauge reads a gauge value.
func (m Metric) Gauge() float32 { return math.Float32frombits(binary.LittleEndian.Uint32(m.Value[:])) }

// HistogramMin reads a histogram's minimum.
func (m Metric) HistogramMin() float32 { return m.Gauge() }

// HistogramMax reads a histogram's maximum.
func (m Metric) HistogramMax() float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(m.Value[4:]))
}

// CounterMetric builds a counter entry.
func CounterMetric(key string, v uint32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricCounter, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], v)
	return m
}

// GaugeMetric builds a gauge entry.
func GaugeMetric(key string, v float32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricGauge, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], math.Float32bits(v))
	return m
}

// HistogramMetric builds a histogram entry (the wire carries only min and max).
func HistogramMetric(key string, lo, hi float32, ticks uint64) Metric {
	m := Metric{Key: key, Type: MetricHistogram, Ticks: ticks}
	binary.LittleEndian.PutUint32(m.Value[:], math.Float32bits(lo))
	binary.LittleEndian.PutUint32(m.Value[4:], math.Float32bits(hi))
	return m
}

// ParseMetrics appends the entries of a Metrics payload to dst. When an entry is truncated it returns the entries
// before it together with an error.
func ParseMetrics(dst []Metric, p []byte) ([]Metric, error) {
	if len(p) == 0 {
		return dst, payloadErr("metrics payload is empty")
	}
	count := int(p[0])
	off := 1
	for i := range count {
		if off >= len(p) {
			return dst, payloadErr("metrics: payload ends before entry %d of %d", i+1, count)
		}
		k := int(p[off])
		if off+1+k+17 > len(p) {
			return dst, payloadErr("metrics: entry %d of %d is truncated", i+1, count)
		}
		m := Metric{Key: strings.ToValidUTF8(string(p[off+1:off+1+k]), "\uFFFD"), Type: MetricType(p[off+1+k])}
		copy(m.Value[:], p[off+2+k:off+10+k])
		m.Ticks = binary.LittleEndian.Uint64(p[off+10+k:])
		dst = append(dst, m)
		off += 18 + k
	}
	return dst, nil
}

// AppendMetricsPayload appends a Metrics payload holding ms (at most 255 entries; keys cut at 255 bytes).
func AppendMetricsPayload(dst []byte, ms []Metric) []byte {
	ms = ms[:min(len(ms), 255)]
	dst = append(dst, byte(len(ms)))
	for _, m := range ms {
		k := m.Key[:min(len(m.Key), 255)]
		dst = append(dst, byte(len(k)))
		dst = append(dst, k...)
		dst = append(dst, byte(m.Type))
		dst = append(dst, m.Value[:]...)
		dst = binary.LittleEndian.AppendUint64(dst, m.Ticks)
	}
	return dst
}
