package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// benchDevices is the fleet the page benchmark runs on.
const benchDevices = 100_000

// benchFleetVersion names the cached fleet's shape; change it when fillFleet changes.
const benchFleetVersion = "v3"

// benchStore returns a copy of a SQLite store holding benchDevices devices, built once through the store API and
// cached in the user's cache directory (filling takes a while on a small machine).
func benchStore(b *testing.B) *sqlite.DB {
	b.Helper()
	ctx := context.Background()
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = os.TempDir()
	}
	cached := filepath.Join(cacheDir, "lodestone-bench", fmt.Sprintf("console-%d-%s.db", benchDevices, benchFleetVersion))
	if _, err := os.Stat(cached); err != nil {
		tmp := cached + ".tmp"
		os.Remove(tmp)
		db, err := sqlite.Open(ctx, tmp, sqlite.Options{Synchronous: "NORMAL", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := fillFleet(ctx, db); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil { // the last connection checkpoints the WAL into the file
			b.Fatal(err)
		}
		if _, err := os.Stat(tmp + "-wal"); err == nil {
			b.Fatal("the filled store kept a WAL file after closing")
		}
		if err := os.Rename(tmp, cached); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "l.db")
	raw, err := os.ReadFile(cached)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// fillFleet writes the fleet: every device with firmware (one of eight versions) and four metrics, one in ten
// with tags, one in a hundred with a fault, and ten groups of a thousand.
func fillFleet(ctx context.Context, db *sqlite.DB) error {
	now := time.Now().UTC()
	const perTx = 2000
	for start := 0; start < benchDevices; start += perTx {
		var batches []*lodestone.DeviceBatch
		for i := start; i < start+perTx; i++ {
			bt := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%06d", i),
				ReceivedAt: now.Add(-time.Duration(i%1440) * time.Minute),
				Info:       &lodestone.DeviceInfo{FirmwareVersion: fmt.Sprintf("1.%d.0", i%8), BuildID: uint64(i % 8)}}
			for k, key := range []string{"temp", "battery", "rssi", "heap_free"} {
				bt.Metrics = append(bt.Metrics, lodestone.Metric{Key: key, Type: lodestone.MetricGauge,
					Value: float64(i%100 + k)})
			}
			if i%100 == 0 {
				bt.Faults = []lodestone.Fault{{FaultType: uint8(i % 4), Registers: lodestone.Registers{PC: 0x08000100 +
					uint32(i%50)*4}, CFSR: 1 << 25}}
			}
			batches = append(batches, bt)
		}
		if err := db.WriteTelemetry(ctx, batches); err != nil {
			return err
		}
	}
	var regs []lodestone.DeviceRegistration
	for i := 0; i < benchDevices; i += 10 {
		tags := []string{"lab", "roof", "field", "basement"}[i/10%4] + ",batch-" + fmt.Sprint(i/10000)
		regs = append(regs, lodestone.DeviceRegistration{DeviceID: fmt.Sprintf("dev-%06d", i), Key: uint32(i + 1),
			Tags: &tags, At: now})
		if len(regs) == 1000 {
			if _, err := db.RegisterDevices(ctx, regs); err != nil {
				return err
			}
			regs = regs[:0]
		}
	}
	for g := range 10 {
		grp := &lodestone.Group{Name: fmt.Sprintf("group-%d", g), CreatedAt: now}
		if err := db.CreateGroup(ctx, grp); err != nil {
			return err
		}
		for i := g * 1000; i < g*1000+1000; i++ {
			if err := db.AddGroupDevice(ctx, grp.ID, fmt.Sprintf("dev-%06d", i*7%benchDevices), now); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkConsolePages serves the console's main pages from a 100,000-device SQLite store, server-side (the
// handler chain the binary runs, no network), and reports each page's p95.
//
//	go test ./console -run '^$' -bench ConsolePages -benchtime 200x
func BenchmarkConsolePages(b *testing.B) {
	db := benchStore(b)
	log := slog.New(slog.DiscardHandler)
	con, err := New(Config{Logger: log, Devices: db, Registry: db, Groups: db, Telemetry: db, Crashes: db,
		Series: db, Counts: db, Membership: db, Credentials: db, Sessions: db})
	if err != nil {
		b.Fatal(err)
	}
	h := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: db, Telemetry: db, Logger: log, Console: con}).Handler()
	secret := newSecret()
	now := time.Now()
	if err := db.CreateSession(context.Background(), &lodestone.Session{Hash: hashSecret(secret), UserName: "admin",
		Role: lodestone.RoleAdmin, Via: "password", CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	for _, page := range []struct{ name, path string }{
		{"overview", "/ui/"},
		{"devices", "/ui/devices"},
		{"devices-page-100", "/ui/devices?page=100"},
		{"devices-search", "/ui/devices?q=dev-0999"},
		{"devices-tag-online", "/ui/devices?tag=roof&status=online"},
		{"devices-group-by-name", "/ui/devices?group=3&sort=name&order=asc"},
		{"devices-firmware", "/ui/devices?firmware=1.3.0&sort=device_id"},
		{"device", "/ui/devices/dev-050000"},
		{"faults", "/ui/faults"},
		{"crashes", "/ui/crashes"},
		{"fleet", "/ui/fleet"},
		{"metrics", "/ui/metrics?key=temp&device=dev-050000"},
		{"series-device", "/ui/api/series?key=temp&device=dev-050000&range=24h"},
		{"series-compare-5", "/ui/api/series?key=temp&device=dev-000001,dev-000002,dev-000003,dev-000004,dev-000005&range=7d"},
	} {
		b.Run(page.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				req := httptest.NewRequest("GET", page.path, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
				w := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, req)
				took = append(took, time.Since(start))
				if w.Code != 200 {
					body, _ := io.ReadAll(w.Body)
					b.Fatalf("%s: %d %s", page.path, w.Code, body)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}
