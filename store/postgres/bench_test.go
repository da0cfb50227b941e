package postgres_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/loadgen"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// BenchmarkWriteTelemetry writes the load generator's sessions straight into each backend, 32 requests per
// transaction (a busy server's group commit), and reports chunks/s.
func BenchmarkWriteTelemetry(b *testing.B) {
	fleet := loadgen.Fleet{Devices: 1000, PerRequest: 8, MetricsPerSession: 6, RebootRate: 0.1, FaultRate: 0.02, Seed: 1}
	svc := ingest.NewService(nil, ingest.Config{}, slog.New(slog.DiscardHandler))
	var parsed []loadgen.Parsed
	for _, body := range fleet.Bodies(512) {
		batches, res := svc.Parse(body.Data, "", time.Now())
		parsed = append(parsed, loadgen.Parsed{Batches: batches, Chunks: res.ChunksReceived})
	}
	run := func(b *testing.B, s lodestone.TelemetryWriter) {
		const group = 32
		var chunks int
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var all []*lodestone.DeviceBatch
			for j := range group {
				p := parsed[(i*group+j)%len(parsed)]
				all = append(all, p.Batches...)
				chunks += p.Chunks
			}
			if err := s.WriteTelemetry(context.Background(), all); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(chunks)/b.Elapsed().Seconds(), "chunks/s")
	}
	b.Run("postgres", func(b *testing.B) { run(b, MustOpenDB(b)) })
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db)
	})
}
