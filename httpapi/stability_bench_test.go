package httpapi_test

import (
	"context"
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

// stabilityFleet is the stability benchmark's fleet: 100,000 devices, 400,000 sessions over 30 days (ten busy
// devices every 5 minutes, the rest about three sessions each), 2% of sessions with a fault (4% on 2.0.0) and 2%
// with a watchdog reboot.
func stabilityBenchFleet(points int) fleetfill.Config {
	c := fleetfill.Default()
	c.Points, c.FaultRate = points, 0.02
	return c
}

// BenchmarkStabilitySQLite measures GET /stability (fleet, group, tag; 1, 7 and 30 days) and a device timeline
// server-side on a cached SQLite fleet (filled once, minutes):
//
//	go test ./httpapi/ -run '^$' -bench BenchmarkStabilitySQLite -benchtime 20x
func BenchmarkStabilitySQLite(b *testing.B) {
	ctx := context.Background()
	c := stabilityBenchFleet(4_000_000)
	path, err := fleetfill.CachedSQLite(ctx, c, fillProgress(b, c))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchStability(b, db, c)
}

// BenchmarkStabilityPostgres is BenchmarkStabilitySQLite on PostgreSQL (2,000,000 samples, 200,000 sessions),
// in a fresh schema or, once, in the database LODESTONE_BENCH_POSTGRES names. It logs the statements' plans.
func BenchmarkStabilityPostgres(b *testing.B) {
	ctx := context.Background()
	u := os.Getenv("LODESTONE_BENCH_POSTGRES")
	if u == "" {
		u = pgtest.URL(b)
	}
	db, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c := stabilityBenchFleet(2_000_000)
	if devs, err := db.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1}); err != nil {
		b.Fatal(err)
	} else if len(devs) == 0 {
		if err := fleetfill.Fill(ctx, db, c, fillProgress(b, c)); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Pool().Exec(ctx, "VACUUM ANALYZE stability_hours, stability_reboots, faults, devices, "+
			"device_tags, device_group_members, device_events"); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []lodestone.StabilityQuery{{From: c.End.Add(-30 * 24 * time.Hour), To: c.End},
		{From: c.End.Add(-30 * 24 * time.Hour), To: c.End, Group: fleetfill.Groups[1].Name}} {
		for _, st := range db.StabilityStatements(q) {
			rows, err := db.Pool().Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF) "+st.SQL, st.Args...)
			if err != nil {
				b.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				rows.Scan(&line)
				plan = append(plan, line)
			}
			rows.Close()
			b.Logf("%s (group %q):\n%s", st.Name, q.Group, strings.Join(plan, "\n"))
		}
	}
	benchStability(b, db, c)
}

func benchStability(b *testing.B, store lodestone.Store, c fleetfill.Config) {
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
	h := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: store, Telemetry: store, Auth: authn, Logger: log}).Handler()
	rng := func(d time.Duration, extra string) string {
		return "/stability?from=" + url.QueryEscape(c.End.Add(-d).Format(time.RFC3339)) + "&to=" +
			url.QueryEscape(c.End.Format(time.RFC3339)) + extra
	}
	day := 24 * time.Hour
	for _, tc := range []struct{ name, path string }{
		{"fleet-1d", rng(day, "")}, {"fleet-7d", rng(7*day, "")}, {"fleet-30d", rng(30*day, "")},
		{"group5000-30d", rng(30*day, "&group="+fleetfill.Groups[1].Name)},
		{"tag-pilot-30d", rng(30*day, "&tag=pilot")},
		{"version-30d", rng(30*day, "&version=2.0.0")},
		{"timeline-busy-device", "/devices/" + fleetfill.DeviceID(3) + "/timeline"},
		{"timeline-device", "/devices/" + fleetfill.DeviceID(5000) + "/timeline"},
	} {
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
				if strings.HasPrefix(tc.path, "/stability") && !strings.Contains(w.Body.String(), `"device_hours"`) {
					b.Fatalf("%s: no versions: %.300s", tc.path, w.Body)
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
