package ferritedb

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// timeFormat is SQLite's datetime('now'), in which ferrite stores every time (UTC).
const timeFormat = "2006-01-02 15:04:05"

// parseTime reads a ferrite timestamp: datetime('now') text, or ISO-8601 if someone wrote one by hand.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{timeFormat, "2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05.999999999",
		"2006-01-02"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable time %q", s)
}

// metricValue turns ferrite's value_json text back into the sample's value: {"counter":N}, {"gauge":F},
// {"histogram":{"min":F,"max":F}} or {"raw":"hex"}. Rust wrote NaN and inf unquoted, which is not JSON; they are
// read back as the floats they were.
func metricValue(typ uint8, text string, m *lodestone.Metric) error {
	m.Type = lodestone.MetricType(typ)
	fixed := text
	for _, r := range []struct{ from, to string }{{"-inf", `"-inf"`}, {"inf", `"inf"`}, {"NaN", `"NaN"`}} {
		if !strings.Contains(fixed, `"`+r.from) {
			fixed = strings.ReplaceAll(fixed, ":"+r.from, ":"+r.to)
		}
	}
	var v struct {
		Counter   *json.Number `json:"counter"`
		Gauge     *flexFloat   `json:"gauge"`
		Histogram *struct {
			Min flexFloat `json:"min"`
			Max flexFloat `json:"max"`
		} `json:"histogram"`
		Raw *string `json:"raw"`
	}
	if err := json.Unmarshal([]byte(fixed), &v); err != nil {
		return fmt.Errorf("value_json %s: %w", text, err)
	}
	switch {
	case v.Counter != nil:
		f, err := v.Counter.Float64()
		if err != nil {
			return fmt.Errorf("value_json %s: %w", text, err)
		}
		m.Value = f
	case v.Gauge != nil:
		m.Value = float64(*v.Gauge)
	case v.Histogram != nil:
		m.Value, m.Max = float64(v.Histogram.Min), float64(v.Histogram.Max)
	case v.Raw != nil:
		b, err := hex.DecodeString(*v.Raw)
		if err != nil || len(b) != 8 {
			return fmt.Errorf("value_json %s: raw must be 16 hex digits", text)
		}
		m.Raw = b
	default:
		return fmt.Errorf("value_json %s: no counter, gauge, histogram or raw", text)
	}
	return nil
}

// flexFloat is a JSON number, or one of the strings NaN, inf and -inf.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = flexFloat(math.NaN())
	case `"inf"`:
		*f = flexFloat(math.Inf(1))
	case `"-inf"`:
		*f = flexFloat(math.Inf(-1))
	case "null":
		*f = flexFloat(math.NaN())
	default:
		var v float64
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*f = flexFloat(v)
	}
	return nil
}

// stackSnapshot reads ferrite's stack_snapshot, the JSON text of up to 16 u32 words.
func stackSnapshot(text string) ([16]uint32, error) {
	var s [16]uint32
	var words []uint32
	if strings.TrimSpace(text) == "" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(text), &words); err != nil {
		return s, fmt.Errorf("stack_snapshot: %w", err)
	}
	copy(s[:], words)
	return s, nil
}
