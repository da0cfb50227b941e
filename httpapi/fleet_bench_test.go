package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/internal/fleetfill"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// BenchmarkFleetSQLite measures the series routes and the device list, server-side (the handler in-process, no
// network), on a SQLite store holding fleetfill.Default(): 100,000 devices and 10,000,000 samples. The first run
// fills the store through its batch write path and caches the file under os.UserCacheDir()/lodestone-bench
// (minutes); later runs open the cached file. Each case reports its p50 and p95 latency:
//
//	go test ./httpapi/ -run '^$' -bench BenchmarkFleetSQLite -benchtime 50x
func BenchmarkFleetSQLite(b *testing.B) {
	ctx := context.Background()
	c := fleetfill.Default()
	path, err := fleetfill.CachedSQLite(ctx, c, fillProgress(b, c))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchFleet(b, db, c)
}

// BenchmarkFleetPostgres is BenchmarkFleetSQLite on PostgreSQL with a smaller fleet: 100,000 devices and 2,000,000
// samples. It fills a fresh schema of LODESTONE_TEST_POSTGRES on every run, or, when LODESTONE_BENCH_POSTGRES
// names a database (add ?search_path=<schema> to use a schema), fills it once and reuses it:
//
//	LODESTONE_BENCH_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=bench' \
//	  go test ./httpapi/ -run '^$' -bench BenchmarkFleetPostgres -benchtime 50x
func BenchmarkFleetPostgres(b *testing.B) {
	ctx := context.Background()
	url := os.Getenv("LODESTONE_BENCH_POSTGRES")
	if url == "" {
		url = pgtest.URL(b)
	}
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := fleetfill.Default()
	c.Points = 2_000_000
	if devs, err := db.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1}); err != nil {
		b.Fatal(err)
	} else if len(devs) == 0 {
		if err := fleetfill.Fill(ctx, db, c, fillProgress(b, c)); err != nil {
			b.Fatal(err)
		}
		_, err := db.Pool().Exec(ctx, "VACUUM ANALYZE devices, device_tags, device_group_members, metrics, metric_keys")
		if err != nil {
			b.Fatal(err)
		}
	}
	benchFleet(b, db, c)
}

func fillProgress(b *testing.B, c fleetfill.Config) func(int) {
	start, next := time.Now(), 0
	return func(n int) {
		if n >= next {
			b.Logf("fleetfill: %d of %d samples written in %v", n, c.Points, time.Since(start).Round(time.Second))
			next = n + c.Points/10
		}
	}
}

// fleetCases are the requests of the console's pages that read a large fleet.
func fleetCases(c fleetfill.Config, group string) []struct{ name, path string } {
	end := c.End
	rng := func(d time.Duration) string {
		return "&from=" + url.QueryEscape(end.Add(-d).Format(time.RFC3339)) + "&to=" +
			url.QueryEscape(end.Format(time.RFC3339))
	}
	day, month := 24*time.Hour, 30*24*time.Hour
	var five string
	for i := range 5 {
		five += "&device_id=" + fleetfill.DeviceID(i)
	}
	busy := fleetfill.DeviceID(3)
	quiet := fleetfill.DeviceID(54321)
	return []struct{ name, path string }{
		{"series/device/1d", "/devices/" + busy + "/series?key=temp" + rng(day)},
		{"series/device/30d", "/devices/" + busy + "/series?key=temp" + rng(month)},
		{"series/device-quiet/30d", "/devices/" + quiet + "/series?key=temp" + rng(month)},
		{"series/device-histogram/30d", "/devices/" + busy + "/series?key=latency_ms" + rng(month)},
		{"series/5-devices/1d", "/series?key=temp" + five + rng(day)},
		{"series/5-devices/30d", "/series?key=temp" + five + rng(month)},
		{"series/fleet/1d", "/series?key=temp" + rng(day)},
		{"series/fleet/7d", "/series?key=temp" + rng(7*day)},
		{"series/fleet/30d", "/series?key=temp" + rng(month)},
		// A console's range ends now, inside a minute: the store reads the samples of the part minutes.
		{"series/fleet/30d-now", "/series?key=temp&from=" + url.QueryEscape(end.Add(-month-23*time.Second).
			Format(time.RFC3339)) + "&to=" + url.QueryEscape(end.Add(-37*time.Second).Format(time.RFC3339))},
		{"series/fleet-group/30d", "/series?key=temp&group_id=" + group + rng(month)},
		{"series/fleet-tag/30d", "/series?key=temp&tag=pilot" + rng(month)},
		{"devices/default", "/devices?limit=50"},
		{"devices/page-1000", "/devices?limit=50&offset=50000"},
		{"devices/last-page", "/devices?limit=50&offset=99950"},
		{"devices/status-online", "/devices?limit=50&status=online"},
		{"devices/status-offline", "/devices?limit=50&status=offline"},
		{"devices/status-provisioned", "/devices?limit=50&status=provisioned"},
		{"devices/group", "/devices?limit=50&group_id=" + group},
		{"devices/tag", "/devices?limit=50&tag=pilot"},
		{"devices/firmware", "/devices?limit=50&firmware_version=1.0.0"},
		{"devices/firmware-sort-asc", "/devices?limit=50&sort=firmware_version&order=asc"},
		{"devices/search-id", "/devices?limit=50&search=dev-0123"},
		{"devices/search-name", "/devices?limit=50&search=lyon+sensor+12"},
		{"devices/search-none", "/devices?limit=50&search=no-such-device"},
		{"devices/sort-device-id", "/devices?limit=50&sort=device_id"},
		{"devices/sort-device-id-desc", "/devices?limit=50&sort=device_id&order=desc"},
		{"devices/sort-name", "/devices?limit=50&sort=name"},
		{"devices/sort-name-desc", "/devices?limit=50&sort=name&order=desc"},
		{"devices/sort-last-seen-asc", "/devices?limit=50&sort=last_seen&order=asc"},
		{"devices/tag-firmware-sort-name", "/devices?limit=50&tag=roof&firmware_version=2.0.0&sort=name"},
	}
}

func benchFleet(b *testing.B, store lodestone.Store, c fleetfill.Config) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, store, "admin", adminPass)
	if err != nil {
		b.Fatal(err)
	}
	authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Store: store.(lodestone.CredentialStore),
		Logger: log, BcryptCost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	defer authn.Close()
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: store, Telemetry: store, Auth: authn, Logger: log})
	h := api.Handler()
	groups, err := store.FindGroups(ctx)
	if err != nil || len(groups) == 0 {
		b.Fatalf("groups: %v, %v", groups, err)
	}
	for _, tc := range fleetCases(c, fmt.Sprint(groups[len(groups)-1].ID)) {
		b.Run(tc.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				req := httptest.NewRequest("GET", tc.path, nil)
				req.SetBasicAuth("admin", adminPass)
				w := httptest.NewRecorder()
				t0 := time.Now()
				h.ServeHTTP(w, req)
				took = append(took, time.Since(t0))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
				}
				if strings.Contains(tc.name, "series/") && !strings.Contains(w.Body.String(), `"count"`) {
					b.Fatalf("%s: no buckets: %.300s", tc.path, w.Body)
				}
			}
			slices.Sort(took)
			pct := func(p float64) float64 {
				return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
		})
	}
}
