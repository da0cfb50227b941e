package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// BenchmarkReadRoutes times the read routes of metric points over 20 devices x 5 keys sampled every minute for a
// day (720,000 points); where the store can seal, every point older than the last 30 minutes is sealed, as the
// server's compactor keeps them. It uses only the store's API, so the same file runs in a checkout from before
// sealing (79204ec) for an A/B of the two (README, Storage per metric point).
func BenchmarkReadRoutes(b *testing.B) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "ab.db"), sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const devices, minutes = 20, 24 * 60
	var batch []*lodestone.DeviceBatch
	for i := range minutes {
		for d := range devices {
			at := base.Add(time.Duration(i)*time.Minute + time.Duration(d)*time.Second)
			batch = append(batch, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%02d", d), ReceivedAt: at,
				Info: &lodestone.DeviceInfo{FirmwareVersion: "1.0.0", BuildID: 1},
				Metrics: []lodestone.Metric{
					{Key: "temp", Type: lodestone.MetricGauge, Value: float64(float32(20 + float64(i%50)/7))},
					{Key: "uptime", Type: lodestone.MetricCounter, Value: float64(i * 60)},
					{Key: "lat", Type: lodestone.MetricHistogram, Value: float64(i % 5), Max: float64(i%5 + 9)},
					{Key: "rssi", Type: lodestone.MetricGauge, Value: -60 + float64(i%9)},
					{Key: "heap", Type: lodestone.MetricGauge, Value: 30000 + float64(i%64*16)},
				}})
		}
		if len(batch) >= 2000 {
			if err := db.WriteTelemetry(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := db.WriteTelemetry(ctx, batch); err != nil {
		b.Fatal(err)
	}
	end := base.Add(minutes * time.Minute)
	if s, ok := any(db).(interface {
		SealMetrics(context.Context, time.Time) (int, error)
	}); ok {
		if _, err := s.SealMetrics(ctx, end.Add(-30*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	routes := []struct {
		name string
		fn   func() error
	}{
		{"FindMetricsNewest", func() error {
			_, err := db.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 100}})
			return err
		}},
		{"FindMetricsDeviceKeyOld", func() error {
			_, err := db.FindMetrics(ctx, lodestone.MetricFilter{Key: "temp", TelemetryFilter: lodestone.TelemetryFilter{
				DeviceID: "dev-07", Until: base.Add(6 * time.Hour), Limit: 100}})
			return err
		}},
		{"FindMetricsKeyPage5", func() error {
			_, err := db.FindMetrics(ctx, lodestone.MetricFilter{Key: "lat", TelemetryFilter: lodestone.TelemetryFilter{
				Limit: 100, Offset: 400}})
			return err
		}},
		{"SeriesDeviceDay", func() error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"dev-03"},
				From: base, To: end})
			return err
		}},
		{"SeriesFiveDevices6h", func() error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "rssi",
				DeviceIDs: []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-05"},
				From:      base.Add(9 * time.Hour), To: base.Add(15 * time.Hour)})
			return err
		}},
		{"SeriesFleetDay", func() error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", Fleet: true,
				From: base.Add(17 * time.Second), To: end.Add(-13 * time.Second)})
			return err
		}},
		{"SeriesFleetTag", func() error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", Fleet: true, Tag: "none",
				From: base, To: end})
			return err
		}},
		{"DeviceSummaries", func() error {
			_, err := db.DeviceSummaries(ctx, lodestone.DeviceFilter{Limit: 50})
			return err
		}},
	}
	b.ResetTimer()
	for _, r := range routes {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				if err := r.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
