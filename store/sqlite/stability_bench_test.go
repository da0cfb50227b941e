package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// BenchmarkWriteTelemetryContacts is BenchmarkWriteTelemetry with time moving on: every transaction is 512
// sessions of 512 devices a minute after their previous ones, so each session is a new contact (the stability
// rollups' trigger adds its observed time) and 2% of sessions carry a watchdog reboot (counted by reason).
func BenchmarkWriteTelemetryContacts(b *testing.B) {
	db := MustOpenDBWith(b, "NORMAL")
	batch := sessions(512)
	ctx := context.Background()
	at := time.Now().Add(-24 * time.Hour)
	for i, s := range batch {
		s.DeviceID = batch[i%512].DeviceID
		if i%50 == 0 {
			s.Reboots = []lodestone.Reboot{{Reason: 3}}
		}
	}
	for b.Loop() {
		at = at.Add(time.Minute)
		for _, s := range batch {
			s.ReceivedAt = at
		}
		if err := db.WriteTelemetry(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "sessions/s")
}
