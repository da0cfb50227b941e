package otlp

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/lodestone-fleet/lodestone"
)

// source is who a ResourceLogs entry comes from.
type source struct {
	project, device string
}

func (s source) key() string { return s.project + "/" + s.device }

// statusError is a failure with a gRPC code; HTTP answers map it to a status.
type statusError struct {
	code    codeKind
	message string
}

func (e *statusError) Error() string { return e.message }

type codeKind int

const (
	codeInvalid codeKind = iota
	codeUnauthenticated
	codePermission
	codeExhausted
	codePrecondition
	codeUnavailable
	codeTooLarge
)

func errf(code codeKind, format string, args ...any) *statusError {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &statusError{code: code, message: msg}
}

// sourceOf reads the source of a ResourceLogs entry: detritus' source.* attributes when the client sends them,
// otherwise device.id or service.instance.id under the token's project, as plain OpenTelemetry SDKs send.
func sourceOf(res *resourcepb.Resource, tok *Token) (source, *statusError) {
	if res == nil {
		return source{}, errf(codeInvalid, "resource_logs.resource is required")
	}
	attrs := map[string]*commonpb.AnyValue{}
	for _, kv := range res.Attributes {
		attrs[kv.Key] = kv.Value
	}
	str := func(k string) (string, bool) {
		v, ok := attrs[k]
		if !ok || v == nil {
			return "", false
		}
		s, ok := v.Value.(*commonpb.AnyValue_StringValue)
		if !ok {
			return "", false
		}
		return s.StringValue, true
	}
	_, hasProject := attrs["source.project"]
	_, hasInstall := attrs["source.install_id"]
	if hasProject || hasInstall {
		var vals [4]string
		for i, k := range []string{"source.project", "source.platform", "source.version", "source.install_id"} {
			v, ok := str(k)
			if !ok {
				return source{}, errf(codeInvalid, "missing resource attribute `%s`", k)
			}
			vals[i] = v
		}
		s := source{project: vals[0], device: vals[3]}
		if err := checkComponent("project", s.project); err != nil {
			return source{}, err
		}
		if err := checkComponent("source_id", s.device); err != nil {
			return source{}, err
		}
		return s, nil
	}
	for _, k := range []string{"device.id", "service.instance.id"} {
		if v, ok := str(k); ok && v != "" {
			s := source{project: tok.Project, device: v}
			if err := checkComponent("device.id", v); err != nil {
				return source{}, err
			}
			return s, nil
		}
	}
	// A token limited to some devices must be told which one; any other token takes what a stock SDK or
	// Collector sends under a fallback identity rather than refusing it.
	if !strings.HasPrefix(tok.Project+"/", tok.SourcePrefix) {
		return source{}, errf(codeInvalid, "missing resource attribute `device.id` (or `service.instance.id`, or "+
			"detritus' `source.project` and `source.install_id`); this token's source_prefix requires one")
	}
	service, _ := str("service.name")
	host, _ := str("host.name")
	return source{project: tok.Project, device: fallbackDevice(service, host)}, nil
}

// unknownService is OpenTelemetry's service.name when none is configured; SDKs append ":<executable>".
const unknownService = "unknown_service"

// fallbackDevice names a source that carries no device identity: "<service.name>@<host.name>", either part alone
// when the other is missing, "unknown_service" when both are. Characters a path component may not hold become
// "_" and the name is cut to 256 bytes, so every resource maps to a storable name.
func fallbackDevice(service, host string) string {
	name := service
	switch {
	case service != "" && host != "":
		name = service + "@" + host
	case service == "":
		name = host
	}
	if name == "" {
		return unknownService
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == utf8.RuneError {
			return '_'
		}
		return r
	}, name)
	if len(name) > 256 {
		name = strings.TrimSuffix(truncate(name, 256), "…")
	}
	if name == "." || name == ".." {
		name = "_"
	}
	return name
}

// unstorable says why a record cannot be stored as sent, or "" when it can. It is the one rule for both backends:
// severity_text and event_name are stored as they come, and PostgreSQL text cannot hold NUL (SQLite can, but
// a record must not be kept by one backend and refused by the other). Body and attributes are stored as JSON, in
// which NUL is escaped, and the identity was checked with the resource. Protobuf and protojson decoding already
// refused invalid UTF-8.
func unstorable(lr *logspb.LogRecord) string {
	switch {
	case lr == nil:
		return "log record is null"
	case strings.IndexByte(lr.SeverityText, 0) >= 0:
		return "severity_text contains a NUL character"
	case strings.IndexByte(lr.EventName, 0) >= 0:
		return "event_name contains a NUL character"
	case !utf8.ValidString(lr.SeverityText) || !utf8.ValidString(lr.EventName):
		return "severity_text or event_name is not UTF-8"
	}
	return ""
}

// checkComponent applies detritus' path-component rule, tightened: no empty, ".", "..", separators, control
// characters or more than 256 bytes.
func checkComponent(what, v string) *statusError {
	bad := v == "" || v == "." || v == ".." || strings.ContainsAny(v, `/\`) || len(v) > 256 || !utf8.ValidString(v)
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			bad = true
		}
	}
	if bad {
		return errf(codeInvalid, "invalid source identity: invalid storage path component `%s`: `%s`", what,
			truncate(v, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// rejections counts the records an export leaves out, with the first reason, for its partial success.
type rejections struct {
	n     int64
	first string
}

func (rj *rejections) add(why string) {
	if rj.n == 0 {
		rj.first = why
	}
	rj.n++
}

// records converts every storable LogRecord of one ResourceLogs entry; the others are counted in rj.
func records(rl *logspb.ResourceLogs, src source, now time.Time, out []*lodestone.LogRecord,
	rj *rejections) []*lodestone.LogRecord {
	var buf []byte
	for _, sl := range rl.ScopeLogs {
		if sl == nil {
			continue
		}
		for _, lr := range sl.LogRecords {
			if why := unstorable(lr); why != "" {
				rj.add(why)
				continue
			}
			r := &lodestone.LogRecord{Project: src.project, DeviceID: src.device, Severity: int32(lr.SeverityNumber),
				SeverityText: lr.SeverityText, EventName: lr.EventName, Flags: lr.Flags, ReceivedAt: now}
			r.ObservedTime = nanos(lr.ObservedTimeUnixNano, now)
			r.Time = nanos(lr.TimeUnixNano, r.ObservedTime)
			buf = appendAnyValue(buf[:0], lr.Body)
			r.Body = string(buf)
			buf = appendKVs(buf[:0], lr.Attributes)
			r.Attributes = string(buf)
			if len(lr.TraceId) > 0 {
				r.TraceID = hex.EncodeToString(lr.TraceId)
			}
			if len(lr.SpanId) > 0 {
				r.SpanID = hex.EncodeToString(lr.SpanId)
			}
			out = append(out, r)
		}
	}
	return out
}

// nanos turns an OTLP timestamp into a time, falling back when it is unset (0) or beyond int64.
func nanos(v uint64, fallback time.Time) time.Time {
	if v == 0 || v > math.MaxInt64 {
		return fallback
	}
	return time.Unix(0, int64(v)).UTC()
}

// appendAnyValue renders an AnyValue as detritus does (§4.1): bytes as lowercase hex, NaN and infinities as null,
// unset as null.
func appendAnyValue(b []byte, v *commonpb.AnyValue) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return appendJSONString(b, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(b, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(b, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return appendRyu(b, x.DoubleValue) // "1.0", not "1": the NDJSON export can tell a double from an int
	case *commonpb.AnyValue_BytesValue:
		b = append(b, '"')
		b = hex.AppendEncode(b, x.BytesValue)
		return append(b, '"')
	case *commonpb.AnyValue_ArrayValue:
		b = append(b, '[')
		if x.ArrayValue != nil {
			for i, e := range x.ArrayValue.Values {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendAnyValue(b, e)
			}
		}
		return append(b, ']')
	case *commonpb.AnyValue_KvlistValue:
		if x.KvlistValue == nil {
			return append(b, "{}"...)
		}
		return appendKVs(b, x.KvlistValue.Values)
	}
	return append(b, "null"...)
}

// appendKVs renders key-values as a JSON object; entries without a value are skipped and a repeated key keeps
// its last value, as detritus does.
func appendKVs(b []byte, kvs []*commonpb.KeyValue) []byte {
	b = append(b, '{')
	first := true
	for i, kv := range kvs {
		if kv == nil || kv.Value == nil || kv.Value.Value == nil || repeatedLater(kvs, i) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, kv.Key)
		b = append(b, ':')
		b = appendAnyValue(b, kv.Value)
	}
	return append(b, '}')
}

func repeatedLater(kvs []*commonpb.KeyValue, i int) bool {
	if len(kvs) > 32 { // quadratic check only for the usual handful of attributes
		return false
	}
	for _, kv := range kvs[i+1:] {
		if kv != nil && kv.Key == kvs[i].Key && kv.Value != nil && kv.Value.Value != nil {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
