package otlp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func detritusResource(project, install string) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("source.project", project),
		str("source.platform", "linux"), str("source.version", "0.1.0"), str("source.install_id", install)}}
}

func request(res *resourcepb.Resource, n int, prefix string) *collogspb.ExportLogsServiceRequest {
	sl := &logspb.ScopeLogs{Scope: &commonpb.InstrumentationScope{Name: "detritus-client"}}
	for i := range n {
		sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{
			TimeUnixNano: uint64(time.Date(2026, 5, 19, 10, 0, i, 0, time.UTC).UnixNano()), ObservedTimeUnixNano: 1,
			SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO",
			Body:       &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("%s %d", prefix, i)}},
			Attributes: []*commonpb.KeyValue{str("target", "app"), {Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(i)}}}},
			TraceId:    []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, EventName: "ev"})
	}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{Resource: res, ScopeLogs: []*logspb.ScopeLogs{sl}}}}
}

func dial(t testing.TB, addr string) collogspb.LogsServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return collogspb.NewLogsServiceClient(cc)
}

func withMD(kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), kv...)
}

func TestGRPCExportStoresBeforeAck(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	c := dial(t, e.addr)
	ctx := withMD("authorization", "Bearer secret-token", "x-protocol-version", "1")
	if _, err := c.Export(ctx, request(detritusResource("detritus", "install-42"), 1001, "log")); err != nil {
		t.Fatal(err)
	}
	// Acknowledged means committed: the records are readable at once.
	got, err := e.db.FindLogs(context.Background(), lodestone.LogFilter{DeviceID: "install-42", Limit: 1000})
	if err != nil || len(got) != 1000 {
		t.Fatalf("stored %d, %v", len(got), err)
	}
	r := got[0]
	if r.Project != "detritus" || r.Body != `"log 1000"` || r.Severity != 9 || r.SeverityText != "INFO" ||
		r.TraceID != "0102030405060708090a0b0c0d0e0f10" || r.Attributes != `{"target":"app","n":1000}` ||
		r.EventName != "ev" || r.ObservedTime.UnixNano() != 1 {
		t.Fatalf("record %+v", r)
	}
	// gzip from an OpenTelemetry exporter.
	if _, err := c.Export(ctx, request(detritusResource("detritus", "install-42"), 3, "gz"),
		grpc.UseCompressor("gzip")); err != nil {
		t.Fatalf("gzip export: %v", err)
	}
	if _, err := c.Export(ctx, request(detritusResource("detritus", "install-42"), 3, "zs"),
		grpc.UseCompressor("zstd")); err != nil {
		t.Fatalf("zstd export: %v", err)
	}
	got, _ = e.db.FindLogs(context.Background(), lodestone.LogFilter{Text: "zs ", Limit: 10})
	if len(got) != 3 {
		t.Fatalf("zstd records: %d", len(got))
	}
	// Empty request: OK, nothing written.
	if _, err := c.Export(ctx, &collogspb.ExportLogsServiceRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestGRPCErrors(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlpConfig) { c.RequireProtocolVersion = true })
	c := dial(t, e.addr)
	good := request(detritusResource("detritus", "i"), 1, "x")
	noAttr := detritusResource("detritus", "i")
	noAttr.Attributes = noAttr.Attributes[:3]
	intAttr := detritusResource("detritus", "i")
	intAttr.Attributes[0].Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}
	cases := []struct {
		name string
		md   []string
		req  *collogspb.ExportLogsServiceRequest
		code codes.Code
		msg  string
	}{
		{"no token", []string{"x-protocol-version", "1"}, good, codes.Unauthenticated, "missing bearer token"},
		{"basic", []string{"authorization", "Basic eA==", "x-protocol-version", "1"}, good, codes.Unauthenticated, "authorization header must use Bearer"},
		{"wrong token", []string{"authorization", "Bearer nope", "x-protocol-version", "1"}, good, codes.Unauthenticated, "invalid bearer token"},
		{"no version", []string{"authorization", "Bearer secret-token"}, good, codes.FailedPrecondition, "missing x-protocol-version metadata"},
		{"version abc", []string{"authorization", "Bearer secret-token", "x-protocol-version", "abc"}, good, codes.FailedPrecondition, "x-protocol-version metadata is not a u32"},
		{"version big", []string{"authorization", "Bearer secret-token", "x-protocol-version", "4294967296"}, good, codes.FailedPrecondition, "is not a u32"},
		{"version 999", []string{"authorization", "Bearer secret-token", "x-protocol-version", "999"}, good, codes.FailedPrecondition, "protocol version 999 does not match 1"},
		{"no resource", []string{"authorization", "Bearer secret-token", "x-protocol-version", "1"}, request(nil, 1, "x"), codes.InvalidArgument, "resource_logs.resource is required"},
		{"missing attr", []string{"authorization", "Bearer secret-token", "x-protocol-version", "1"}, request(noAttr, 1, "x"), codes.InvalidArgument, "missing resource attribute `source.install_id`"},
		{"int attr", []string{"authorization", "Bearer secret-token", "x-protocol-version", "1"}, request(intAttr, 1, "x"), codes.InvalidArgument, "missing resource attribute `source.project`"},
		{"traversal", []string{"authorization", "Bearer secret-token", "x-protocol-version", "1"}, request(detritusResource("detritus", "../escape"), 1, "x"), codes.InvalidArgument, "invalid storage path component `source_id`: `../escape`"},
		{"other project", []string{"authorization", "Bearer secret-token", "x-protocol-version", "1"}, request(detritusResource("rs-modde", "i"), 1, "x"), codes.PermissionDenied, "token is not permitted to write this source"},
	}
	for _, tc := range cases {
		_, err := c.Export(withMD(tc.md...), tc.req)
		st, _ := status.FromError(err)
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v %q; want %v %q", tc.name, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if got, _ := e.db.FindLogs(context.Background(), lodestone.LogFilter{}); len(got) != 0 {
		t.Fatalf("%d records stored by failed exports", len(got))
	}
}

func TestPlainOpenTelemetryAttribution(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	c := dial(t, e.addr)
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "fw"), str("device.id", "dev-7")}}
	ctx := withMD("authorization", "Bearer secret-token") // no x-protocol-version: a stock exporter
	if _, err := c.Export(ctx, request(res, 2, "otel")); err != nil {
		t.Fatal(err)
	}
	res2 := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.instance.id", "dev-8")}}
	if _, err := c.Export(ctx, request(res2, 1, "otel")); err != nil {
		t.Fatal(err)
	}
	// No device identity: the fallback, service.name@host.name, either alone, or unknown_service (issue 13).
	for _, res := range []*resourcepb.Resource{
		{Attributes: []*commonpb.KeyValue{str("service.name", "checkout"), str("host.name", "web-1")}},
		{Attributes: []*commonpb.KeyValue{str("service.name", "a/b\\c")}},
		{Attributes: []*commonpb.KeyValue{str("host.name", "web-2")}},
		{},
	} {
		if _, err := c.Export(ctx, request(res, 1, "otel")); err != nil {
			t.Fatalf("no device attribute (%v): %v", res, err)
		}
	}
	for dev, n := range map[string]int{"dev-7": 2, "dev-8": 1, "checkout@web-1": 1, "a_b_c": 1, "web-2": 1,
		"unknown_service": 1} {
		got, _ := e.db.FindLogs(context.Background(), lodestone.LogFilter{Project: "detritus", DeviceID: dev})
		if len(got) != n {
			t.Fatalf("%s: %d records", dev, len(got))
		}
	}
}

func TestRateLimitedExport(t *testing.T) {
	toml := strings.Replace(tokenTOML, "logs_burst = 100000", "logs_burst = 1", 1)
	toml = strings.Replace(toml, "logs_per_minute = 600000", "logs_per_minute = 1", 1)
	e := newEnv(t, toml, nil)
	c := dial(t, e.addr)
	ctx := withMD("authorization", "Bearer secret-token", "x-protocol-version", "1")
	if _, err := c.Export(ctx, request(detritusResource("detritus", "i"), 1, "x")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Export(ctx, request(detritusResource("detritus", "i"), 1, "x"))
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || st.Message() != "log rate limit exceeded" {
		t.Fatalf("second export: %v", err)
	}
	// Another source has its own bucket.
	if _, err := c.Export(ctx, request(detritusResource("detritus", "j"), 1, "x")); err != nil {
		t.Fatal(err)
	}
}

func postLogs(t *testing.T, url, ctype, enc string, body []byte, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHTTPLogsProtobufAndJSON(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlpConfig) { c.MaxMessageBytes = 64 << 10 })
	url := "http://" + e.addr + "/v1/logs"
	pb, _ := proto.Marshal(request(detritusResource("detritus", "h1"), 5, "pb"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pb)
	zw.Close()
	resp, _ := postLogs(t, url, "application/x-protobuf", "gzip", gz.Bytes(), "secret-token")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("protobuf+gzip: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	js := `{"resourceLogs":[{"resource":{"attributes":[{"key":"device.id","value":{"stringValue":"h2"}}]},
		"scopeLogs":[{"logRecords":[{"timeUnixNano":"1747648800000000000","severityNumber":17,"severityText":"ERROR",
		"body":{"stringValue":"json line"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
		"attributes":[{"key":"b","value":{"boolValue":true}}]}]}]}]}`
	enc, _ := zstd.NewWriter(nil)
	resp, body := postLogs(t, url, "application/json", "zstd", enc.EncodeAll([]byte(js), nil), "secret-token")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "{}" {
		t.Fatalf("json+zstd: %d %s", resp.StatusCode, body)
	}
	got, _ := e.db.FindLogs(context.Background(), lodestone.LogFilter{DeviceID: "h2"})
	if len(got) != 1 || got[0].TraceID != "5b8efff798038103d269b633813fc60c" || got[0].SpanID != "eee19b7ec3c1b174" ||
		got[0].Severity != 17 || got[0].Body != `"json line"` || got[0].Attributes != `{"b":true}` ||
		got[0].Time.UnixNano() != 1747648800000000000 {
		t.Fatalf("json record %+v", got)
	}
	if got, _ := e.db.FindLogs(context.Background(), lodestone.LogFilter{DeviceID: "h1"}); len(got) != 5 {
		t.Fatalf("protobuf records %d", len(got))
	}
	// Errors: a google.rpc.Status in the request's encoding.
	resp, body = postLogs(t, url, "application/x-protobuf", "", pb, "")
	var st spb.Status
	if resp.StatusCode != 401 || proto.Unmarshal(body, &st) != nil || st.Message != "missing bearer token" || st.Code != int32(codes.Unauthenticated) {
		t.Fatalf("no token: %d %v", resp.StatusCode, &st)
	}
	resp, body = postLogs(t, url, "application/json", "", []byte(`{"resourceLogs":[{}]}`), "secret-token")
	if resp.StatusCode != 400 || !strings.Contains(string(body), "resource_logs.resource is required") {
		t.Fatalf("no resource: %d %s", resp.StatusCode, body)
	}
	resp, _ = postLogs(t, url, "application/json", "", []byte(`{not json`), "secret-token")
	if resp.StatusCode != 400 {
		t.Fatalf("bad json: %d", resp.StatusCode)
	}
	resp, _ = postLogs(t, url, "application/x-protobuf", "br", pb, "secret-token")
	if resp.StatusCode != 415 {
		t.Fatalf("brotli: %d", resp.StatusCode)
	}
	resp, _ = postLogs(t, url, "text/plain", "", pb, "secret-token")
	if resp.StatusCode != 415 {
		t.Fatalf("text/plain: %d", resp.StatusCode)
	}
	big, _ := proto.Marshal(request(detritusResource("detritus", "h1"), 2000, strings.Repeat("x", 100)))
	resp, _ = postLogs(t, url, "application/x-protobuf", "", big, "secret-token")
	if resp.StatusCode != 413 {
		t.Fatalf("over the message limit: %d", resp.StatusCode)
	}
}

type otlpConfig = otlp.Config

func TestCommittedRecordsArePublished(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := e.events.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.addr)
	md := withMD("authorization", "Bearer secret-token")
	if _, err := c.Export(md, request(detritusResource("detritus", "live"), 3, "tail")); err != nil {
		t.Fatal(err)
	}
	ev := receive(t, events, 10*time.Second, "the committed records' event")
	var recs []lodestone.LogRecordJSON
	if err := json.Unmarshal(ev.Data, &recs); err != nil || ev.Type != lodestone.EventLogs || ev.DeviceID != "live" ||
		len(recs) != 3 || string(recs[2].Body) != `"tail 2"` || recs[0].Project != "detritus" {
		t.Fatalf("event %+v: %v", ev, err)
	}
}
