// Command storagebench measures the disk a stored metric point takes: it writes one fixed fleet through
// lodestone's own write path (WriteTelemetry, as ingest does) into a SQLite store and, when a PostgreSQL URL is
// given, a PostgreSQL store; fills ferrite's schema with the same points the way ferrite stores them; and seals the
// points older than -seal-age into per-series compressed blocks (store/metricblock) with the stores' own compactor
// (SealMetrics; on SQLite in a copy of the database, on PostgreSQL in place): the layout that keeps recent points
// as rows. It prints bytes per point, tables and indexes included,
// from SQLite's dbstat (through the sqlite3 command, so no driver build option matters) and PostgreSQL's
// pg_total_relation_size.
//
// Run it from the repository root with bench/storage.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

type config struct {
	devices int
	span    time.Duration
	every   time.Duration
	sealAge time.Duration
	pgURL   string
	dir     string
	verbose bool
}

func main() {
	var c config
	flag.IntVar(&c.devices, "devices", 200, "devices in the fleet")
	flag.DurationVar(&c.span, "span", 24*time.Hour, "time the fleet reports over")
	flag.DurationVar(&c.every, "every", time.Minute, "how often each device sends its ten metrics")
	flag.DurationVar(&c.sealAge, "seal-age", 30*time.Minute, "points older than this (before the newest) are sealed into blocks")
	flag.StringVar(&c.pgURL, "postgres", os.Getenv("LODESTONE_TEST_POSTGRES"), "PostgreSQL URL; empty skips PostgreSQL")
	flag.StringVar(&c.dir, "dir", "", "directory for the databases (default: a temporary one, removed at the end)")
	flag.BoolVar(&c.verbose, "v", false, "print each table and index")
	flag.Parse()
	if err := run(context.Background(), c); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config) error {
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "storagebench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.dir = dir
	}
	batches, points := fleet(c)
	end := batches[len(batches)-1].ReceivedAt.UnixMilli() + 1
	cutoff := end - c.sealAge.Milliseconds()
	fmt.Printf("fleet: %d devices, ten metrics every %s for %s: %d points; sealed by the stores' own compactors "+
		"(SealMetrics), points of the last %s kept as rows\n\n", c.devices, c.every, c.span, points, c.sealAge)
	fmt.Printf("%-44s %14s %10s\n", "layout", "bytes", "B/point")
	report := func(name string, objs []object) {
		var total int64
		for _, o := range objs {
			total += o.bytes
		}
		fmt.Printf("%-44s %14d %10.2f\n", name, total, float64(total)/float64(points))
		if c.verbose {
			for _, o := range objs {
				fmt.Printf("    %-40s %14d %10.2f\n", o.name, o.bytes, float64(o.bytes)/float64(points))
			}
		}
	}

	// lodestone on SQLite, as written, then compacted.
	rows := filepath.Join(c.dir, "lodestone.db")
	start := time.Now()
	if err := fillSQLite(ctx, rows, batches); err != nil {
		return err
	}
	ingest := time.Since(start)
	objs, err := dbstat(rows, lodestoneTables)
	if err != nil {
		return err
	}
	report("SQLite, lodestone rows (as written)", objs)
	sealed := filepath.Join(c.dir, "sealed.db")
	if err := sqliteExec(rows, "VACUUM INTO '"+sealed+"'"); err != nil {
		return err
	}
	if objs, err = dbstat(sealed, lodestoneTables); err != nil {
		return err
	}
	report("SQLite, lodestone rows (VACUUM)", objs)
	start = time.Now()
	n, err := sealStore(ctx, sealed, cutoff)
	if err != nil {
		return err
	}
	sealTime := time.Since(start)
	if objs, err = dbstat(sealed, lodestoneTables); err != nil {
		return err
	}
	report("SQLite, store-sealed blocks + recent rows", objs)
	if err := sqliteExec(sealed, "VACUUM"); err != nil {
		return err
	}
	if objs, err = dbstat(sealed, lodestoneTables); err != nil {
		return err
	}
	report("SQLite, blocks + recent rows (VACUUM)", objs)
	var blockBytes int64
	for _, o := range objs {
		if strings.HasPrefix(o.name, "metric_blocks") {
			blockBytes += o.bytes
		}
	}
	fmt.Printf("%-44s %14d %10.2f\n", "  of which blocks + indexes, per sealed point", blockBytes,
		float64(blockBytes)/float64(n))

	ferrite := filepath.Join(c.dir, "ferrite.db")
	if err := fillFerrite(ctx, ferrite, batches); err != nil {
		return err
	}
	if objs, err = dbstat(ferrite, []string{"metrics"}); err != nil {
		return err
	}
	report("SQLite, ferrite's schema (as written)", objs)
	if err := sqliteExec(ferrite, "VACUUM"); err != nil {
		return err
	}
	if objs, err = dbstat(ferrite, []string{"metrics"}); err != nil {
		return err
	}
	report("SQLite, ferrite's schema (VACUUM)", objs)

	if c.pgURL != "" {
		if err := runPostgres(ctx, c, batches, cutoff, report); err != nil {
			return err
		}
	}
	fmt.Printf("\nSQLite: %d points written in %s (%.0f points/s); %d points sealed into blocks in %s (%.0f points/s)\n",
		points, ingest.Round(time.Millisecond), float64(points)/ingest.Seconds(), n, sealTime.Round(time.Millisecond),
		float64(n)/sealTime.Seconds())
	return nil
}

// lodestoneTables are the tables (with their indexes) that hold metric points in lodestone's SQLite schema.
var lodestoneTables = []string{"metrics", "metric_keys", "metric_rollups", "metric_blocks"}

// fleet is every device sending ten metrics each c.every over c.span, in time order, the shapes of
// internal/fleetfill's sessions, with the value types the wire carries (gauges and histograms are float32, counters
// uint32): noisy gauges, integer gauges, steady counters, a histogram. Arrival times jitter by up to 300 ms, the
// device's ticks by a few.
func fleet(c config) ([]*lodestone.DeviceBatch, int) {
	rng := rand.New(rand.NewPCG(18, 2))
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	start := end - c.span.Milliseconds()
	every := c.every.Milliseconds()
	sessions := int(c.span.Milliseconds() / every)
	var out []*lodestone.DeviceBatch
	tx, rx := make([]float64, c.devices), make([]float64, c.devices)
	for s := range sessions {
		for d := range c.devices {
			phase := int64(d) * every / int64(c.devices)
			at := start + int64(s)*every + phase + rng.Int64N(300)
			day := float64(at%86_400_000) / 86_400_000 * 2 * math.Pi
			tx[d] += float64(rng.IntN(4096))
			rx[d] += float64(rng.IntN(8192))
			f32 := func(v float64) float64 { return float64(float32(v)) }
			lat := 5 + rng.Float64()*20
			g := func(k string, v float64) lodestone.Metric {
				return lodestone.Metric{Key: k, Type: lodestone.MetricGauge, Value: f32(v)}
			}
			ctr := func(k string, v float64) lodestone.Metric {
				return lodestone.Metric{Key: k, Type: lodestone.MetricCounter, Value: float64(uint32(v))}
			}
			ticks := uint64(int64(s)*every + rng.Int64N(4))
			ms := []lodestone.Metric{
				g("temp", 20+5*math.Sin(day)+rng.NormFloat64()*0.2),
				g("battery_mv", math.Round(4200-float64(s)/10+rng.Float64()*4)),
				g("rssi", math.Round(-60+rng.NormFloat64()*4)),
				g("heap_free", float64(30_000+rng.IntN(64)*16)),
				g("cpu_load", rng.Float64()),
				ctr("uptime_s", float64(s)*c.every.Seconds()),
				ctr("tx_bytes", tx[d]),
				ctr("rx_bytes", rx[d]),
				ctr("boot_count", 1),
				{Key: "latency_ms", Type: lodestone.MetricHistogram, Value: f32(lat), Max: f32(lat + rng.Float64()*100)},
			}
			for i := range ms {
				ms[i].Ticks = ticks
			}
			out = append(out, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%06d", d),
				ReceivedAt: time.UnixMilli(at).UTC(), Metrics: ms,
				Info: &lodestone.DeviceInfo{FirmwareVersion: "1.3.0", BuildID: 7}})
		}
	}
	// Written in arrival order, as ingest writes them.
	sortBatches(out)
	return out, len(out) * 10
}

// write sends batches to a store in transactions of perTx sessions, as fleetfill does.
func write(ctx context.Context, s interface {
	WriteTelemetry(context.Context, []*lodestone.DeviceBatch) error
}, batches []*lodestone.DeviceBatch) error {
	const perTx = 2000
	for lo := 0; lo < len(batches); lo += perTx {
		if err := s.WriteTelemetry(ctx, batches[lo:min(lo+perTx, len(batches))]); err != nil {
			return fmt.Errorf("write telemetry: %w", err)
		}
	}
	return nil
}

func fillSQLite(ctx context.Context, path string, batches []*lodestone.DeviceBatch) error {
	db, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return err
	}
	if err := write(ctx, db, batches); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// sealStore seals the points before cutoff with the store's own compactor (sqlite.DB.SealMetrics), as a server
// does in the background.
func sealStore(ctx context.Context, path string, cutoff int64) (int, error) {
	db, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return 0, err
	}
	n, err := db.SealMetrics(ctx, time.UnixMilli(cutoff))
	if err != nil {
		db.Close()
		return n, err
	}
	return n, db.Close()
}

func fillPostgres(ctx context.Context, url string, batches []*lodestone.DeviceBatch) error {
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	return write(ctx, db, batches)
}
