package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// sessions builds n device sessions shaped like the load generator's: a device touch with DeviceInfo, six
// metrics and a heartbeat, a reboot in one session of ten.
func sessions(n int) []*lodestone.DeviceBatch {
	out := make([]*lodestone.DeviceBatch, n)
	now := time.Now()
	for i := range out {
		b := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%05d", i%1000), ReceivedAt: now,
			Info:       &lodestone.DeviceInfo{FirmwareVersion: "1.4.2", BuildID: 7},
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}}}
		for k := range 6 {
			b.Metrics = append(b.Metrics, lodestone.Metric{Key: fmt.Sprintf("key-%d", k), Type: lodestone.MetricGauge,
				Value: float64(k), Ticks: uint64(k)})
		}
		if i%10 == 0 {
			b.Reboots = []lodestone.Reboot{{Reason: 1}}
		}
		out[i] = b
	}
	return out
}

// BenchmarkWriteTelemetry writes n sessions per transaction, as a busy group commit does (20: devices posting
// one session per request, about what 32 clients leave queued behind a commit).
func BenchmarkWriteTelemetry(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, n := range []int{20, 64, 512, 2048} {
			b.Run(fmt.Sprintf("%s/%d", sync, n), func(b *testing.B) {
				db := MustOpenDBWith(b, sync)
				batch := sessions(n)
				ctx := context.Background()
				for b.Loop() {
					if err := db.WriteTelemetry(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "sessions/s")
				b.ReportMetric(float64(n*8*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkMetricWriteCost writes BenchmarkWriteTelemetry's 64-session transactions into a store with today's
// schema and one with the covering series index that migration 00200 dropped, to show what an index in key order
// costs each metric row (README, Benchmark). The rollup trigger 00200 also dropped is the old binary's; compare
// BenchmarkWriteTelemetry across the two trees for it.
func BenchmarkMetricWriteCost(b *testing.B) {
	for _, c := range []struct{ name, change string }{
		{"schema", ""},
		{"series-index", "CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at, type, value, max)"},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "x.db")
			db, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
			if c.change != "" {
				raw, err := sql.Open(sqlite.DriverName, "file:"+path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = raw.Exec(c.change)
				raw.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
			if db, err = sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"}); err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			batch := sessions(64)
			for b.Loop() {
				if err := db.WriteTelemetry(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "sessions/s")
		})
	}
}
