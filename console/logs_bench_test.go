package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// BenchmarkLogExplorer measures the explorer on a SQLite store of 200,000 records from 100 devices: a look of an
// idle live tail (what every open tail costs each second), the first page of a device's records, and the
// export's rate against the store reading the same records. go test ./console -run '^$' -bench LogExplorer
// -benchtime 20x
func BenchmarkLogExplorer(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "logs.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 200_000
	start := time.Now().Add(-time.Hour)
	for i := 0; i < n; i += 1000 {
		batch := make([]*lodestone.LogRecord, 0, 1000)
		for j := i; j < i+1000; j++ {
			batch = append(batch, lgRecord(fmt.Sprintf("dev-%03d", j%100), start.Add(time.Duration(j)*10*time.Millisecond),
				int32(1+j%24), fmt.Sprintf("line %d", j)))
		}
		if err := db.WriteLogs(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	con, err := New(Config{Logger: slog.New(slog.DiscardHandler), Logs: LogsDeps{Logs: db, Scanner: db, Head: db}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tail-look-idle", func(b *testing.B) {
		for _, q := range []string{"", "device=dev-042", "project=fleet&severity=error"} {
			b.Run(q, func(b *testing.B) {
				lq, _ := parseLogQuery(mustQuery(q), time.Now())
				head, _ := db.LastLogID(ctx)
				t := tailer{scan: db, head: db, q: lq, settled: head, sent: map[int64]bool{}}
				for b.Loop() {
					if _, err := t.poll(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
	// The baseline: the store reading the same 2,000 records as two pages, with nothing written out.
	b.Run("findlogs-device-2-pages", func(b *testing.B) {
		for b.Loop() {
			for off := 0; off < 2000; off += 1000 {
				if recs, err := db.FindLogs(ctx, lodestone.LogFilter{DeviceID: "dev-042", Limit: 1000, Offset: off}); err != nil || len(recs) != 1000 {
					b.Fatal(err, len(recs))
				}
			}
		}
	})
	b.Run("export-device", func(b *testing.B) {
		lq, _ := parseLogQuery(mustQuery("device=dev-042&range=all"), time.Now())
		for b.Loop() {
			rec := httptest.NewRecorder()
			req := &request{Request: httptest.NewRequest("GET", "/ui/logs/export?"+lq.values().Encode(), nil)}
			if err := con.logsExport(rec, req); err != nil || rec.Code != http.StatusOK {
				b.Fatal(err, rec.Code)
			}
			io.Copy(io.Discard, rec.Body)
		}
		b.ReportMetric(float64(n/100)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

func mustQuery(q string) map[string][]string {
	v, err := url.ParseQuery(q)
	if err != nil {
		panic(err)
	}
	return v
}
