package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
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

// BenchmarkWriteTelemetry writes n sessions per transaction, as a busy group commit does.
func BenchmarkWriteTelemetry(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, n := range []int{64, 512, 2048} {
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
