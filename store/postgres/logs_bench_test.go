package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// BenchmarkWriteLogs stores 5000-record groups (one group commit of the log writer) by COPY.
func BenchmarkWriteLogs(b *testing.B) {
	db := MustOpenDB(b)
	recs := make([]*lodestone.LogRecord, 5000)
	now := time.Now()
	for i := range recs {
		recs[i] = &lodestone.LogRecord{Project: "p", DeviceID: fmt.Sprintf("dev-%d", i%8), Time: now, ObservedTime: now,
			Severity: int32(9 + 8*min(1, i%10/9)), SeverityText: "INFO",
			Body:       fmt.Sprintf(`"sensor loop iteration %d finished in 12 ms, queue depth 3"`, i),
			Attributes: `{"module":"sensor","thread":"main","iteration":1}`, TraceID: "30313233343536373839616263646566",
			SpanID: "3031323334353637", ReceivedAt: now}
	}
	b.ResetTimer()
	for range b.N {
		if err := db.WriteLogs(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}
