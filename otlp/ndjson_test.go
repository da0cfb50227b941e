package otlp_test

import (
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

func anyv(v any) *commonpb.AnyValue {
	switch x := v.(type) {
	case string:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: x}}
	case int:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(x)}}
	case float64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: x}}
	case bool:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: x}}
	case []byte:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: x}}
	case []*commonpb.AnyValue:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: x}}}
	case []*commonpb.KeyValue:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: x}}}
	}
	return &commonpb.AnyValue{}
}

func kv(k string, v any) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: anyv(v)} }

// TestNDJSONExportMatchesDetritus sends detritus-style records over gRPC, exports them and compares the files with
// what detritusd writes for the same records (spec §4.1): path logs/<project>/<install_id>/<UTC day>.ndjson, one
// line per record in arrival order, keys in alphabetical order (nested too), serde_json's string escapes and
// float format, bytes as hex, unset values skipped in objects and null in arrays, NaN as null.
func TestNDJSONExportMatchesDetritus(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	c := dial(t, e.addr)
	ctx := withMD("authorization", "Bearer secret-token", "x-protocol-version", "1")
	const t0 = 1779184800000000000 // 2026-05-19T10:00:00Z
	recs := []*logspb.LogRecord{
		{TimeUnixNano: t0, ObservedTimeUnixNano: t0 + 5, SeverityNumber: 9, SeverityText: "INFO",
			Body:       anyv("hello \"world\"\n\t\b\f\x01 é ☃ <&> \u2028"),
			Attributes: []*commonpb.KeyValue{kv("target", "app::net"), kv("name", "event src/main.rs:10"), kv("b", true)},
			EventName:  "event src/main.rs:10"},
		{TimeUnixNano: t0 + 1, ObservedTimeUnixNano: t0 + 1, SeverityNumber: 17, SeverityText: "ERROR",
			Body: anyv([]*commonpb.KeyValue{kv("zeta", 1.0), kv("alpha", 0.1), kv("big", 1e16), kv("small", 1.5e-7),
				kv("tiny", 0.0001), kv("neg", -2.5), kv("int", -7), kv("nan", math.NaN()), kv("unset", nil),
				kv("list", []*commonpb.AnyValue{anyv(1e300), {}, anyv([]byte{0xAB, 0x01})}), kv("dup", 1), kv("dup", 2)}),
			TraceId: []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8},
			Flags: 1},
		{TimeUnixNano: t0 + 2, ObservedTimeUnixNano: t0 + 2, SeverityNumber: 5, SeverityText: "DEBUG"},
	}
	send := func(install string, rs ...*logspb.LogRecord) {
		t.Helper()
		req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
			Resource:  detritusResource("detritus", install),
			ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: "detritus-client"}, LogRecords: rs}}}}}
		if _, err := c.Export(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	send(installID, recs[0], recs[1])
	send("install-2", recs[2])
	send(installID, recs[2])
	day := time.Now().UTC().Format(time.DateOnly) // detritus names the file after the day it wrote the line

	want := []string{
		`{"attributes":{"b":true,"name":"event src/main.rs:10","target":"app::net"},"body":"hello \"world\"\n\t\b\f\u0001 é ☃ <&> ` + "\u2028" + `","dropped_attributes_count":0,"event_name":"event src/main.rs:10","flags":0,"observed_time_unix_nano":1779184800000000005,"severity_number":9,"severity_text":"INFO","span_id":"","time_unix_nano":1779184800000000000,"trace_id":""}`,
		`{"attributes":{},"body":{"alpha":0.1,"big":1e16,"dup":2,"int":-7,"list":[1e300,null,"ab01"],"nan":null,"neg":-2.5,"small":1.5e-7,"tiny":0.0001,"zeta":1.0},"dropped_attributes_count":0,"event_name":"","flags":1,"observed_time_unix_nano":1779184800000000001,"severity_number":17,"severity_text":"ERROR","span_id":"0102030405060708","time_unix_nano":1779184800000000001,"trace_id":"deadbeef000000000000000000000001"}`,
		`{"attributes":{},"body":null,"dropped_attributes_count":0,"event_name":"","flags":0,"observed_time_unix_nano":1779184800000000002,"severity_number":5,"severity_text":"DEBUG","span_id":"","time_unix_nano":1779184800000000002,"trace_id":""}`,
	}
	dir := t.TempDir()
	// A file of an earlier export is replaced, not appended to.
	stale := filepath.Join(dir, "logs", "detritus", installID, day+".ndjson")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("old\n"), 0o644)
	st, err := otlp.ExportNDJSON(context.Background(), e.db, dir, otlp.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Records != 4 {
		t.Fatalf("stats %+v, want 2 files and 4 records", st)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	slices.Sort(files)
	wantFiles := []string{"logs/detritus/11111111-1111-1111-1111-111111111111/" + day + ".ndjson",
		"logs/detritus/install-2/" + day + ".ndjson"}
	if !slices.Equal(files, wantFiles) {
		t.Fatalf("files %q, want %q", files, wantFiles)
	}
	got, _ := os.ReadFile(filepath.Join(dir, wantFiles[0]))
	if exp := want[0] + "\n" + want[1] + "\n" + want[2] + "\n"; string(got) != exp {
		t.Fatalf("file 1:\n got %s\nwant %s", got, exp)
	}
	got, _ = os.ReadFile(filepath.Join(dir, wantFiles[1]))
	if string(got) != want[2]+"\n" {
		t.Fatalf("file 2:\n got %s\nwant %s", got, want[2]+"\n")
	}

	// Filters: another project exports nothing; a range of past days exports nothing and leaves the files.
	st, err = otlp.ExportNDJSON(context.Background(), e.db, dir, otlp.ExportOptions{Project: "other"})
	if err != nil || st.Files != 0 {
		t.Fatalf("other project: %+v %v", st, err)
	}
	old := time.Now().Add(-72 * time.Hour)
	st, err = otlp.ExportNDJSON(context.Background(), e.db, dir, otlp.ExportOptions{Since: old, Until: old.Add(time.Hour)})
	if err != nil || st.Files != 0 {
		t.Fatalf("past days: %+v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, wantFiles[1])); string(b) != want[2]+"\n" {
		t.Fatal("an empty export changed a file")
	}
	// Until rounds up to the end of its day: today's records are in.
	st, err = otlp.ExportNDJSON(context.Background(), e.db, t.TempDir(), otlp.ExportOptions{Since: time.Now(), Until: time.Now()})
	if err != nil || st.Records != 4 {
		t.Fatalf("today: %+v %v", st, err)
	}
}

func TestNDJSONPathRefusesUnsafeComponents(t *testing.T) {
	for _, bad := range [][2]string{{"..", "x"}, {"p", "a/b"}, {"p", `a\b`}, {"", "x"}, {"p", "."}} {
		if _, err := otlp.NDJSONPath(bad[0], bad[1], "2026-05-19"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, err := otlp.NDJSONPath("my.app", ".hidden", "2026-05-19"); err != nil ||
		p != "logs/my.app/.hidden/2026-05-19.ndjson" {
		t.Fatalf("%q %v", p, err)
	}
	// A record whose stored body is not JSON is an error, not a broken line.
	if _, err := otlp.AppendNDJSON(nil, &lodestone.LogRecord{Body: "{", Time: time.Unix(1, 0)}); err == nil ||
		!strings.Contains(err.Error(), "") {
		t.Fatal("bad stored JSON accepted")
	}
}

func TestRequestIDEchoedOrMade(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	resp, err := http.Get("http://" + e.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); resp.StatusCode != 204 || !uuidRe.MatchString(id) {
		t.Fatalf("healthz: %d request id %q", resp.StatusCode, id)
	}
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", nil) // a 401 carries it too
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("401: %d request id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
}
