package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/loadgen"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// loadgenCmd measures ingest throughput: simulated devices posting sessions over HTTP keep-alive, and in the same
// run the store's ceiling for the same records without HTTP.
type loadgenCmd struct {
	stdout, stderr io.Writer
}

const loadgenUsage = `Simulates a fleet posting ferrite sessions (DeviceInfo, RebootReason, FaultRecord, Metrics,
Heartbeat) to POST /ingest/chunks over keep-alive connections and reports chunks/s and
latency percentiles. In the same run it writes the same records straight into a fresh
SQLite store (no HTTP) to show the storage ceiling.

Examples:
  lodestone loadgen                                   # in-process server, 10 s
  lodestone loadgen --url http://127.0.0.1:4000/ingest/chunks --duration 30s
  lodestone loadgen --per-request 1 --concurrency 64  # devices posting directly

`

func (c *loadgenCmd) spec() cmdSpec {
	return cmdSpec{use: "loadgen", short: "measure ingest throughput: simulated devices posting sessions over HTTP",
		long: loadgenUsage, setup: func(fs *flag.FlagSet) runFunc {
			var (
				url         = fs.String("url", "", "ingest `URL` of a running server, or several separated by commas (replicas share the clients); empty starts one in this process on a temporary database")
				apiKey      = fs.String("api-key", "", "X-API-Key to send")
				devices     = fs.Int("devices", 1000, "simulated `devices`")
				perRequest  = fs.Int("per-request", 8, "sessions per request: 1 is a device posting directly, more is a gateway batch")
				metrics     = fs.Int("metrics", 6, "metric samples per session")
				rebootRate  = fs.Float64("reboot-rate", 0.1, "share of sessions reporting a reboot")
				faultRate   = fs.Float64("fault-rate", 0.02, "share of sessions carrying a fault record")
				concurrency = fs.Int("concurrency", 32, "concurrent HTTP clients (gateways or devices posting at once)")
				duration    = fs.Duration("duration", 10*time.Second, "how long to send")
				rawDuration = fs.Duration("raw-duration", 5*time.Second, "how long to measure the raw store ceiling; 0 skips it")
				bodies      = fs.Int("bodies", 2048, "distinct request bodies to cycle through")
				syncMode    = fs.String("sqlite-sync", "full", "SQLite synchronous mode for the in-process server and the raw store")
				asJSON      = fs.Bool("json", false, "print the reports as JSON")
				cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (in-process server included)")
			)
			return func(ctx context.Context, _ []string) error {
				if *devices <= 0 || *perRequest <= 0 || *metrics < 0 || *bodies <= 0 {
					return fmt.Errorf("--devices, --per-request and --bodies must be positive")
				}
				if *cpuProfile != "" {
					f, err := os.Create(*cpuProfile)
					if err != nil {
						return err
					}
					defer f.Close()
					if err := pprof.StartCPUProfile(f); err != nil {
						return err
					}
					defer pprof.StopCPUProfile()
				}
				fleet := loadgen.Fleet{Devices: *devices, PerRequest: *perRequest, MetricsPerSession: *metrics,
					RebootRate: *rebootRate, FaultRate: *faultRate, Seed: 1}
				bs := fleet.Bodies(*bodies)

				tmp, err := os.MkdirTemp("", "lodestone-loadgen-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)

				target := *url
				if target == "" {
					addr, stop, err := c.startServer(ctx, filepath.Join(tmp, "server"), *syncMode)
					if err != nil {
						return err
					}
					defer stop()
					target = "http://" + addr + "/ingest/chunks"
				}
				var reports []loadgen.Report
				e2e, err := loadgen.HTTP(ctx, strings.Split(target, ","), *apiKey, bs, *concurrency, *duration, 0)
				reports = append(reports, e2e)
				if err != nil {
					c.print(reports, *asJSON)
					return err
				}
				if *rawDuration > 0 {
					raw, err := c.raw(ctx, filepath.Join(tmp, "raw.db"), *syncMode, bs, *rawDuration)
					if err != nil {
						return err
					}
					reports = append(reports, raw)
				}
				c.print(reports, *asJSON)
				return nil
			}
		}}
}

func (c *loadgenCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

// startServer runs serve in this process on a loopback port and returns its address.
func (c *loadgenCmd) startServer(ctx context.Context, dir, syncMode string) (string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	s := &serveCmd{stdout: io.Discard, stderr: c.stderr, ready: ready, dir: dir, getenv: func(k string) string {
		if k == "BASIC_AUTH_PASS" {
			return "loadgen-not-used"
		}
		return ""
	}}
	go func() {
		done <- s.Run(ctx, []string{"--http", "127.0.0.1:0", "--data-dir", dir, "--log-level", "error",
			"--sqlite-sync", syncMode})
	}()
	select {
	case addr := <-ready:
		return addr, func() { cancel(); <-done }, nil
	case err := <-done:
		cancel()
		return "", nil, fmt.Errorf("start in-process server: %w", err)
	}
}

func (c *loadgenCmd) raw(ctx context.Context, path, syncMode string, bs []loadgen.Body,
	d time.Duration) (loadgen.Report, error) {
	db, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: syncMode})
	if err != nil {
		return loadgen.Report{}, err
	}
	defer db.Close()
	svc := ingest.NewService(nil, ingest.Config{}, slog.New(slog.DiscardHandler))
	parsed := make([]loadgen.Parsed, len(bs))
	for i, b := range bs {
		batches, res := svc.Parse(b.Data, "", time.Now())
		if len(res.Errors) > 0 {
			return loadgen.Report{}, errors.New("loadgen: generated body does not parse: " + res.Errors[0])
		}
		parsed[i] = loadgen.Parsed{Batches: batches, Chunks: res.ChunksReceived}
	}
	return loadgen.Store(ctx, db, parsed, 64, d)
}

func (c *loadgenCmd) print(reports []loadgen.Report, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(reports)
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\trequests\tchunks\tchunks/s\treq/s\tp50\tp90\tp99\tmax\tfailed\t")
	for _, r := range reports {
		lat := func(d time.Duration) string {
			if d == 0 {
				return "-"
			}
			return d.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", r.Name, r.Requests, r.Chunks,
			r.ChunksPerSec, r.RequestsPerSec, lat(r.P50), lat(r.P90), lat(r.P99), lat(r.Max), r.Failed)
	}
	tw.Flush()
	if len(reports) == 2 && reports[1].ChunksPerSec > 0 {
		fmt.Fprintf(c.stdout, "\nend-to-end / raw store: %.0f%%\n", 100*reports[0].ChunksPerSec/reports[1].ChunksPerSec)
	}
}
