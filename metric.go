package lodestone

import (
	"encoding/hex"
	"math"
	"strconv"
)

// ValueJSON renders the sample as ferrite's value_json text: {"counter":N}, {"gauge":F},
// {"histogram":{"min":F,"max":F}}, or {"raw":"hex"} for a type the server does not know. The read API and the
// live event stream both send it. NaN and infinities become null, so the text stays valid JSON (ferrite writes
// NaN and inf, which no JSON parser accepts).
func (m *Metric) ValueJSON() string {
	switch m.Type {
	case MetricCounter:
		return `{"counter":` + strconv.FormatUint(uint64(m.Value), 10) + `}`
	case MetricGauge:
		return `{"gauge":` + f32(m.Value) + `}`
	case MetricHistogram:
		return `{"histogram":{"min":` + f32(m.Value) + `,"max":` + f32(m.Max) + `}}`
	}
	return `{"raw":"` + hex.EncodeToString(m.Raw) + `"}`
}

func f32(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return strconv.FormatFloat(v, 'f', -1, 32)
}
