package otlp

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
)

// NDJSONPath is where detritus writes a record received on day (YYYY-MM-DD, UTC): logs/<project>/<install_id>/
// <day>.ndjson under its data directory, with forward slashes. It fails when project or device is not a safe path
// component.
func NDJSONPath(project, device, day string) (string, error) {
	if err := checkComponent("project", project); err != nil {
		return "", err
	}
	if err := checkComponent("source_id", device); err != nil {
		return "", err
	}
	return "logs/" + project + "/" + device + "/" + day + ".ndjson", nil
}

// AppendNDJSON appends r as one line of detritus' daily NDJSON files (spec §4.1), newline included: the keys in
// alphabetical order as serde_json writes them, nested objects too, strings escaped as serde_json escapes them
// and doubles in its shortest form ("1.0", "1e16"). The record's dropped_attributes_count is not stored, so it is
// always 0.
func AppendNDJSON(b []byte, r *lodestone.LogRecord) ([]byte, error) {
	var err error
	b = append(b, `{"attributes":`...)
	if b, err = appendCanonical(b, r.Attributes, "{}"); err != nil {
		return b, err
	}
	b = append(b, `,"body":`...)
	if b, err = appendCanonical(b, r.Body, "null"); err != nil {
		return b, err
	}
	b = append(b, `,"dropped_attributes_count":0,"event_name":`...)
	b = appendSerdeString(b, r.EventName)
	b = append(b, `,"flags":`...)
	b = strconv.AppendUint(b, uint64(r.Flags), 10)
	b = append(b, `,"observed_time_unix_nano":`...)
	b = strconv.AppendUint(b, unixNanos(r.ObservedTime.UnixNano()), 10)
	b = append(b, `,"severity_number":`...)
	b = strconv.AppendInt(b, int64(r.Severity), 10)
	b = append(b, `,"severity_text":`...)
	b = appendSerdeString(b, r.SeverityText)
	b = append(b, `,"span_id":`...)
	b = appendSerdeString(b, r.SpanID)
	b = append(b, `,"time_unix_nano":`...)
	b = strconv.AppendUint(b, unixNanos(r.Time.UnixNano()), 10)
	b = append(b, `,"trace_id":`...)
	b = appendSerdeString(b, r.TraceID)
	return append(b, "}\n"...), nil
}

func unixNanos(n int64) uint64 { return uint64(max(n, 0)) }

// appendCanonical re-renders stored JSON the way serde_json would write the same value.
func appendCanonical(b []byte, stored, empty string) ([]byte, error) {
	if stored == "" {
		stored = empty
	}
	dec := json.NewDecoder(strings.NewReader(stored))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return b, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return b, errors.New("trailing data after stored JSON")
	}
	return appendSerde(b, v), nil
}

func appendSerde(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return appendSerdeString(b, x)
	case json.Number:
		return appendSerdeNumber(b, string(x))
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSerde(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // serde_json's Map is a BTreeMap: byte order
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSerdeString(b, k)
			b = append(b, ':')
			b = appendSerde(b, x[k])
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// appendSerdeNumber keeps integers as they are and writes doubles as ryu does (serde_json's float format).
func appendSerdeNumber(b []byte, lit string) []byte {
	if !strings.ContainsAny(lit, ".eE") {
		if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return append(b, lit...)
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return append(b, "null"...)
	}
	return appendRyu(b, f)
}

// appendRyu formats a double as the ryu crate's format64 does: shortest round-trip digits, plain notation with a
// ".0" for integral values when the decimal point lies within 16 digits (and down to 1e-5), scientific "1e16" /
// "1.5e-7" otherwise; NaN and infinities are JSON null, as serde_json writes them.
func appendRyu(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if math.Signbit(f) {
		b = append(b, '-')
		f = -f
	}
	if f == 0 {
		return append(b, "0.0"...)
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	length := len(digits)
	kk := x + 1 // position of the decimal point after the first digit
	k := kk - length
	switch {
	case k >= 0 && kk <= 16:
		b = append(b, digits...)
		b = append(b, strings.Repeat("0", k)...)
		return append(b, ".0"...)
	case kk > 0 && kk <= 16:
		b = append(b, digits[:kk]...)
		b = append(b, '.')
		return append(b, digits[kk:]...)
	case kk > -5 && kk <= 0:
		b = append(b, "0."...)
		b = append(b, strings.Repeat("0", -kk)...)
		return append(b, digits...)
	case length == 1:
		b = append(b, digits...)
	default:
		b = append(b, digits[0], '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	return strconv.AppendInt(b, int64(kk-1), 10)
}

// appendSerdeString escapes as serde_json does: quote, backslash, \b \f \n \r \t, other control characters as
// \u00xx with lowercase hex; everything else, non-ASCII included, verbatim.
func appendSerdeString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
