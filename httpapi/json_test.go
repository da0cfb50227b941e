package httpapi

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// value_json is ferrite's text, byte for byte, and always valid JSON (ferrite writes NaN and inf).
func TestValueJSON(t *testing.T) {
	cases := []struct {
		m    lodestone.Metric
		want string
	}{
		{lodestone.Metric{Type: lodestone.MetricCounter, Value: 42}, `{"counter":42}`},
		{lodestone.Metric{Type: lodestone.MetricCounter, Value: 4294967295}, `{"counter":4294967295}`},
		{lodestone.Metric{Type: lodestone.MetricGauge, Value: 25.5}, `{"gauge":25.5}`},
		{lodestone.Metric{Type: lodestone.MetricGauge, Value: -67}, `{"gauge":-67}`},
		{lodestone.Metric{Type: lodestone.MetricGauge, Value: float64(float32(0.0000001))}, `{"gauge":0.0000001}`},
		{lodestone.Metric{Type: lodestone.MetricGauge, Value: float64(float32(0.1))}, `{"gauge":0.1}`},
		{lodestone.Metric{Type: lodestone.MetricHistogram, Value: 1.5, Max: 8.25}, `{"histogram":{"min":1.5,"max":8.25}}`},
		{lodestone.Metric{Type: lodestone.MetricGauge, Value: math.NaN()}, `{"gauge":null}`},
		{lodestone.Metric{Type: lodestone.MetricHistogram, Value: math.Inf(-1), Max: math.Inf(1)}, `{"histogram":{"min":null,"max":null}}`},
		{lodestone.Metric{Type: 7, Raw: []byte{1, 2, 3, 4, 5, 6, 7, 0xff}}, `{"raw":"01020304050607ff"}`},
	}
	for _, c := range cases {
		got := valueJSON(&c.m)
		if got != c.want || !json.Valid([]byte(got)) {
			t.Fatalf("valueJSON(%+v) = %s, want %s", c.m, got, c.want)
		}
	}
}
