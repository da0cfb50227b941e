package otlp_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// TestOpenTelemetrySDKExporter: the OpenTelemetry Go SDK's stock OTLP gRPC log exporter (gzip, no
// x-protocol-version) delivers records attributed by device.id.
func TestOpenTelemetrySDKExporter(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	ctx := context.Background()
	exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(e.addr), otlploggrpc.WithInsecure(),
		otlploggrpc.WithHeaders(map[string]string{"authorization": "Bearer secret-token"}),
		otlploggrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "firmware"), attribute.String("device.id", "sdk-dev"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	logger := lp.Logger("sensor")
	for _, msg := range []string{"first", "second"} {
		var rec otellog.Record
		rec.SetBody(attribute.StringValue(msg))
		rec.SetSeverity(otellog.SeverityWarn)
		rec.SetSeverityText("WARN")
		rec.AddAttributes(attribute.String("module", "i2c"))
		logger.Emit(ctx, rec)
	}
	if err := lp.Shutdown(ctx); err != nil { // flushes; an export error surfaces here
		t.Fatal(err)
	}
	got, err := e.db.FindLogs(ctx, lodestone.LogFilter{Project: "detritus", DeviceID: "sdk-dev", MinSeverity: 13})
	if err != nil || len(got) != 2 {
		t.Fatalf("stored %d, %v", len(got), err)
	}
	bodies := got[0].Body + got[1].Body
	if bodies != `"second""first"` && bodies != `"first""second"` || got[0].Attributes != `{"module":"i2c"}` ||
		got[0].SeverityText != "WARN" {
		t.Fatalf("records %+v %+v", got[0], got[1])
	}
}

// TestOpenTelemetrySDKDefaultResource is issue 13's stock SDK: the Go SDK's OTLP gRPC exporter with its default
// resource (service.name "unknown_service:<exe>", telemetry.sdk.*, no device.id) was refused with
// InvalidArgument. It is stored under the fallback identity, the service name; a token whose source_prefix
// names devices still refuses it.
func TestOpenTelemetrySDKDefaultResource(t *testing.T) {
	toml := tokenTOML + `
[[token]]
id = "devices-only"
secret = "` + otlp.HashToken("devices-only-token") + `"
project = "detritus"
source_prefix = "detritus/dev-"
`
	e := newEnv(t, toml, nil)
	ctx := context.Background()
	export := func(token string) error {
		exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(e.addr), otlploggrpc.WithInsecure(),
			otlploggrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}),
			otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp))) // default resource
		var rec otellog.Record
		rec.SetBody(attribute.StringValue("from a stock SDK"))
		rec.SetSeverity(otellog.SeverityError)
		lp.Logger("stock").Emit(ctx, rec)
		return lp.Shutdown(ctx)
	}
	if err := export("secret-token"); err != nil {
		t.Fatalf("stock SDK export: %v", err)
	}
	got, err := e.db.FindLogs(ctx, lodestone.LogFilter{Project: "detritus"})
	if err != nil || len(got) != 1 || !strings.HasPrefix(got[0].DeviceID, "unknown_service:") ||
		got[0].Body != `"from a stock SDK"` {
		t.Fatalf("stored %+v, %v", got, err)
	}
	t.Logf("fallback identity %q", got[0].DeviceID)
	if err := export("devices-only-token"); err == nil || !strings.Contains(err.Error(), "InvalidArgument") &&
		!strings.Contains(err.Error(), "source_prefix") {
		t.Fatalf("a token limited to devices accepted a record without device.id: %v", err)
	}
}

// BenchmarkSDKExporter drives the OpenTelemetry Go SDK (batch processor, OTLP gRPC exporter) as gateways would:
// several logger providers (the SDK exports one batch at a time per processor), each emitting from its own
// goroutine, batches of up to 4096 records, each export acknowledged after its commit. The clock stops when every
// provider's ForceFlush returns, so every record is durable.
func BenchmarkSDKExporter(b *testing.B) {
	e := newEnv(b, tokenTOML, nil)
	ctx := context.Background()
	const providers = 8
	lps := make([]*sdklog.LoggerProvider, providers)
	for i := range lps {
		exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(e.addr), otlploggrpc.WithInsecure(),
			otlploggrpc.WithHeaders(map[string]string{"authorization": "Bearer secret-token"}))
		if err != nil {
			b.Fatal(err)
		}
		res := resource.NewSchemaless(attribute.String("device.id", fmt.Sprintf("gateway-%d", i)))
		lps[i] = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp,
			sdklog.WithExportMaxBatchSize(4096), sdklog.WithMaxQueueSize(1<<20), sdklog.WithExportInterval(20*time.Millisecond))))
	}
	per := b.N * 1000 / providers // b.N is in thousands of records
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, lp := range lps {
		wg.Go(func() {
			logger := lp.Logger("bench")
			var rec otellog.Record
			rec.SetSeverity(otellog.SeverityInfo)
			rec.SetSeverityText("INFO")
			rec.AddAttributes(attribute.String("module", "sensor"), attribute.Int("worker", i))
			for n := range per {
				rec.SetBody(attribute.StringValue("sensor loop iteration finished in 12 ms"))
				rec.SetTimestamp(time.Unix(0, int64(n)))
				logger.Emit(ctx, rec)
			}
			if err := lp.ForceFlush(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(per*providers)/b.Elapsed().Seconds(), "records/s")
	var n int
	if err := e.db.ReadDB().QueryRow(`SELECT count(*) FROM logs`).Scan(&n); err != nil || n != per*providers {
		b.Fatalf("%d records stored of %d: %v", n, per*providers, err)
	}
	for _, lp := range lps {
		lp.Shutdown(ctx)
	}
}
