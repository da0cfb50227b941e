package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// fill writes sessions device sessions (six metrics and a heartbeat each, a fault and a reboot in one of ten)
// received at `at`, in transactions of 1,000 sessions.
func fill(b *testing.B, s lodestone.Store, sessions int, at time.Time) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < sessions; start += 1000 {
		var batch []*lodestone.DeviceBatch
		for i := start; i < min(start+1000, sessions); i++ {
			d := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%04d", i%500), ReceivedAt: at,
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}}}
			for k := range 6 {
				d.Metrics = append(d.Metrics, lodestone.Metric{Key: fmt.Sprintf("k%d", k), Type: lodestone.MetricGauge,
					Value: float64(k)})
			}
			if i%10 == 0 {
				d.Faults = []lodestone.Fault{{FaultType: 1}}
				d.Reboots = []lodestone.Reboot{{Reason: 1}}
			}
			batch = append(batch, d)
		}
		if err := s.WriteTelemetry(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchFleetCounts measures the row counts behind the Prometheus gauges on a store holding sessions sessions
// (about 7.2 rows each).
func BenchFleetCounts(b *testing.B, s lodestone.Store, sessions int) {
	fill(b, s, sessions, time.Now())
	c := s.(lodestone.FleetCounter)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.FleetCounts(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchPurge measures a retention purge of sessions old sessions beside as many recent ones, and reports the
// time per delete transaction: the longest ingest waits for the writer because of retention.
func BenchPurge(b *testing.B, s lodestone.Store, sessions, batch int) {
	r := s.(lodestone.RetentionStore)
	ctx := context.Background()
	fill(b, s, sessions, time.Now())
	var rows, txs int64
	var spent time.Duration
	for i := 0; i < b.N; i++ {
		fill(b, s, sessions, time.Now().Add(-48*time.Hour))
		start := time.Now()
		deleted, err := r.PurgeBefore(ctx, time.Now().Add(-24*time.Hour), batch)
		spent += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range deleted {
			rows += n
			txs += n/int64(batch) + 1
		}
	}
	b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
	b.ReportMetric(float64(spent.Milliseconds())/float64(txs), "ms/tx")
	b.ReportMetric(0, "ns/op")
}
