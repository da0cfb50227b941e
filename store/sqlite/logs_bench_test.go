package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// BenchmarkWriteLogs stores 5000-record groups (one group commit of the log writer) with synchronous=FULL.
func BenchmarkWriteLogs(b *testing.B) {
	db := MustOpenDBWith(b, "FULL")
	recs := make([]*lodestone.LogRecord, 5000)
	now := time.Now()
	for i := range recs {
		recs[i] = &lodestone.LogRecord{Project: "p", DeviceID: fmt.Sprintf("dev-%d", i%8), Time: now, ObservedTime: now,
			Severity: int32(9 + 8*min(1, i%10/9)), SeverityText: "INFO", Body: fmt.Sprintf(`"sensor loop iteration %d finished in 12 ms, queue depth 3"`, i),
			Attributes: `{"module":"sensor","thread":"main","iteration":1}`, TraceID: "30313233343536373839616263646566", SpanID: "3031323334353637", ReceivedAt: now}
	}
	b.ResetTimer()
	for range b.N {
		if err := db.WriteLogs(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// The literal term FindLogs adds makes the partial severity index usable (whether the planner prefers it to the
// time index depends on the data).
func TestLogSeverityQueryUsesPartialIndex(t *testing.T) {
	db := MustOpenDB(t)
	rows, err := db.ReadDB().Query(`EXPLAIN QUERY PLAN SELECT count(*) FROM logs x
		WHERE x.severity >= ? AND x.severity >= 13`, 17)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		rows.Scan(&id, &parent, &notused, &detail)
		plan += detail + "\n"
	}
	if !strings.Contains(plan, "logs_severity_time") {
		t.Fatalf("plan does not use the severity index:\n%s", plan)
	}
}
