package otlp_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/lodestone-fleet/lodestone"
)

// benchRequest is an SDK-shaped export: batch records of one device, each with a message body, a trace id and
// three attributes.
func benchRequest(dev string, batch int) *collogspb.ExportLogsServiceRequest {
	sl := &logspb.ScopeLogs{Scope: &commonpb.InstrumentationScope{Name: "firmware"}}
	now := uint64(time.Now().UnixNano())
	for i := range batch {
		sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{TimeUnixNano: now + uint64(i),
			ObservedTimeUnixNano: now, SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO",
			Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{
				StringValue: fmt.Sprintf("sensor loop iteration %d finished in 12 ms, queue depth 3", i)}},
			Attributes: []*commonpb.KeyValue{str("module", "sensor"), str("thread", "main"),
				{Key: "iteration", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(i)}}}},
			TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567")})
	}
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "fw"), str("device.id", dev)}}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{Resource: res,
		ScopeLogs: []*logspb.ScopeLogs{sl}}}}
}

// BenchmarkGRPCExport measures log records per second through OTLP gRPC into SQLite (synchronous=FULL), each
// export acknowledged only after its records are committed. Clients and server share the machine's cores.
func BenchmarkGRPCExport(b *testing.B) {
	for _, cfg := range []struct{ clients, batch int }{{8, 2000}, {16, 1000}, {4, 5000}} {
		b.Run(fmt.Sprintf("clients=%d/batch=%d", cfg.clients, cfg.batch), func(b *testing.B) {
			e := newEnv(b, tokenTOML, nil)
			ctx := withMD("authorization", "Bearer secret-token")
			reqs := make([]*collogspb.ExportLogsServiceRequest, cfg.clients)
			clients := make([]collogspb.LogsServiceClient, cfg.clients)
			for i := range reqs {
				reqs[i] = benchRequest(fmt.Sprintf("dev-%d", i), cfg.batch)
				clients[i] = dial(b, e.addr)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range cfg.clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := clients[c].Export(ctx, reqs[c]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*cfg.batch)/el.Seconds(), "records/s")
			got, err := e.db.FindLogs(context.Background(), lodestone.LogFilter{Limit: 1})
			if err != nil || len(got) != 1 {
				b.Fatalf("nothing stored: %v", err)
			}
		})
	}
}
