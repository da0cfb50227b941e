package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// reportCmd is ferrite-server's report, faults and metrics subcommands: a table (or JSON) of the fleet, read
// from the local database without changing it, or from a running server with --server.
type reportCmd struct {
	kind           string // report, faults or metrics
	stdout, stderr io.Writer
	getenv         func(string) string
}

const reportUsage = `  report    every device with its firmware, build id, status, fault/metric/reboot counts and last contact
  faults    the latest fault events (50 unless --limit): device, type, PC, LR, symbol, time
  metrics   the latest metric samples (50 unless --limit): device, key, type, value, time
  report stability   stability per firmware version ('lodestone help report stability')

They read the local database (--db or --data-dir, as serve uses them) without changing it, even while the server
runs; or, with --server URL, ask a running server, with --token (or BASIC_AUTH_USER/BASIC_AUTH_PASS).
Times are UTC. --json prints {"devices"|"faults"|"metrics":[...]} with the same fields in both modes.

Examples:
  lodestone report
  lodestone faults --device sensor-42 --since 24h
  lodestone metrics --key temp --server https://fleet.example.com --token $TOKEN --json
`

// Rows as printed; the JSON field names follow ferrite's API.
type reportDevice struct {
	DeviceID        string `json:"device_id"`
	FirmwareVersion string `json:"firmware_version"`
	BuildID         uint64 `json:"build_id"`
	Status          string `json:"status"`
	FaultCount      int64  `json:"fault_count"`
	MetricCount     int64  `json:"metric_count"`
	RebootCount     int64  `json:"reboot_count"`
	LastSeen        string `json:"last_seen"`
}

type reportFault struct {
	DeviceID      string  `json:"device_id"`
	FaultType     uint8   `json:"fault_type"`
	FaultTypeName string  `json:"fault_type_name"`
	PC            uint32  `json:"pc"`
	LR            uint32  `json:"lr"`
	Symbol        *string `json:"symbol"`
	CreatedAt     string  `json:"created_at"`
}

type reportMetric struct {
	DeviceID   string `json:"device_id"`
	Key        string `json:"key"`
	MetricType uint8  `json:"metric_type"`
	ValueJSON  string `json:"value_json"`
	CreatedAt  string `json:"created_at"`
}

// reportSource is where the rows come from: the local store or a server.
type reportSource interface {
	devices(ctx context.Context, status lodestone.DeviceStatus, limit, offset int) ([]reportDevice, error)
	faults(ctx context.Context, f lodestone.TelemetryFilter) ([]reportFault, error)
	metrics(ctx context.Context, f lodestone.MetricFilter) ([]reportMetric, error)
}

func (c *reportCmd) spec() cmdSpec {
	short := map[string]string{
		"report":  "devices with their record counts, as a table or JSON",
		"faults":  "the latest fault events, as a table or JSON",
		"metrics": "the latest metric samples, as a table or JSON",
	}[c.kind]
	var subs []cmdSpec
	if c.kind == "report" {
		subs = []cmdSpec{(&stabilityCmd{stdout: c.stdout, stderr: c.stderr, getenv: c.getenv}).spec()}
	}
	return cmdSpec{use: c.kind, short: short, long: reportUsage, subs: subs, setup: func(fs *flag.FlagSet) runFunc {
		db := dbFlags(fs, c.getenv)
		o := &reportOptions{}
		o.server, o.token = remoteFlags(fs, c.getenv)
		fs.BoolVar(&o.asJSON, "json", false, "print JSON instead of a table")
		switch c.kind {
		case "report":
			fs.StringVar(&o.status, "status", "", "only devices with this `status`: unknown, provisioned, online, offline")
		default:
			fs.IntVar(&o.limit, "limit", 50, "show at most `n` rows, newest first (at most 1000)")
			fs.StringVar(&o.device, "device", "", "only this device (its device_id)")
			fs.StringVar(&o.since, "since", "", "only newer than this: a `duration` ago (24h, 90m) or a time (2026-05-01T08:00:00Z)")
		}
		if c.kind == "metrics" {
			fs.StringVar(&o.key, "key", "", "only this metric `key`")
		}
		return func(ctx context.Context, _ []string) error {
			cfg, err := db.config()
			if err != nil {
				return err
			}
			return c.report(ctx, cfg, *o)
		}
	}}
}

func (c *reportCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

type reportOptions struct {
	server, token              *string
	asJSON                     bool
	limit                      int
	device, since, key, status string
}

func (c *reportCmd) report(ctx context.Context, cfg Config, o reportOptions) error {
	server, token, asJSON, limit, device, since, key, status := o.server, o.token, o.asJSON, o.limit, o.device,
		o.since, o.key, o.status
	var err error
	f := lodestone.TelemetryFilter{DeviceID: device, Limit: limit}
	if c.kind != "report" && (limit < 1 || limit > lodestone.MaxListLimit) {
		return fmt.Errorf("%s: --limit must be between 1 and %d", c.kind, lodestone.MaxListLimit)
	}
	if since != "" {
		if f.Since, err = parseSince(since, time.Now()); err != nil {
			return fmt.Errorf("%s: %w", c.kind, err)
		}
	}

	var src reportSource
	if *server != "" {
		src = remoteSource{newRemote(*server, *token, c.getenv, 30*time.Second)}
	} else {
		local, err := openReadOnly(ctx, cfg.DB)
		if err != nil {
			return err
		}
		defer local.Close()
		src = localSource{local}
	}

	switch c.kind {
	case "report":
		var rows []reportDevice
		for offset := 0; ; offset += lodestone.MaxListLimit {
			page, err := src.devices(ctx, lodestone.DeviceStatus(status), lodestone.MaxListLimit, offset)
			if err != nil {
				return err
			}
			rows = append(rows, page...)
			if len(page) < lodestone.MaxListLimit {
				break
			}
		}
		if asJSON {
			return jsonOut(c.stdout, map[string]any{"devices": nonNil(rows)})
		}
		return printDevices(c.stdout, rows)
	case "faults":
		rows, err := src.faults(ctx, f)
		if err != nil {
			return err
		}
		if asJSON {
			return jsonOut(c.stdout, map[string]any{"faults": nonNil(rows)})
		}
		return printFaults(c.stdout, rows)
	default:
		rows, err := src.metrics(ctx, lodestone.MetricFilter{TelemetryFilter: f, Key: key})
		if err != nil {
			return err
		}
		if asJSON {
			return jsonOut(c.stdout, map[string]any{"metrics": nonNil(rows)})
		}
		return printMetrics(c.stdout, rows)
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// parseSince takes a duration back from now (ferrite-cli's --since) or a time as the API accepts it.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	if t, ok := httpapi.ParseTime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration such as 24h or a time such as 2026-05-01T08:00:00Z", s)
}

// openReadOnly opens the database that serve uses, for reading only.
func openReadOnly(ctx context.Context, db string) (lodestone.Store, error) {
	spec, err := parseDB(db)
	if err != nil {
		return nil, err
	}
	if spec.dialect == schema.Postgres {
		// Every transaction of the session is read-only, so a report cannot change the database.
		u := spec.target
		if strings.Contains(u, "?") {
			u += "&default_transaction_read_only=on"
		} else {
			u += "?default_transaction_read_only=on"
		}
		return postgres.Open(ctx, u, postgres.Options{MaxConns: 2, NoMigrate: true})
	}
	return sqlite.OpenReadOnly(ctx, spec.target)
}

const timeText = "2006-01-02 15:04:05" // ferrite's timestamps: UTC, no zone

type localSource struct{ s lodestone.Store }

func (l localSource) devices(ctx context.Context, status lodestone.DeviceStatus, limit, offset int) ([]reportDevice, error) {
	r, ok := l.s.(lodestone.DeviceReporter)
	if !ok {
		return nil, errors.New("this database backend cannot count records per device")
	}
	sums, err := r.DeviceSummaries(ctx, lodestone.DeviceFilter{Status: status, Limit: limit, Offset: offset})
	if err != nil {
		return nil, err
	}
	out := make([]reportDevice, len(sums))
	for i, d := range sums {
		out[i] = reportDevice{DeviceID: d.DeviceID, FirmwareVersion: d.FirmwareVersion, BuildID: d.BuildID,
			Status: string(d.Status), FaultCount: d.Faults, MetricCount: d.Metrics, RebootCount: d.Reboots,
			LastSeen: d.LastSeen.UTC().Format(timeText)}
	}
	return out, nil
}

func (l localSource) faults(ctx context.Context, f lodestone.TelemetryFilter) ([]reportFault, error) {
	fs, err := l.s.FindFaults(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]reportFault, len(fs))
	for i, x := range fs {
		out[i] = reportFault{DeviceID: x.DeviceID, FaultType: x.FaultType, FaultTypeName: chunk.FaultTypeName(x.FaultType),
			PC: x.Registers.PC, LR: x.Registers.LR, Symbol: x.Symbol, CreatedAt: x.ReceivedAt.UTC().Format(timeText)}
	}
	return out, nil
}

func (l localSource) metrics(ctx context.Context, f lodestone.MetricFilter) ([]reportMetric, error) {
	ms, err := l.s.FindMetrics(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]reportMetric, len(ms))
	for i, m := range ms {
		out[i] = reportMetric{DeviceID: m.DeviceID, Key: m.Key, MetricType: uint8(m.Type), ValueJSON: m.ValueJSON(),
			CreatedAt: m.ReceivedAt.UTC().Format(timeText)}
	}
	return out, nil
}

type remoteSource struct{ r *remote }

func (s remoteSource) devices(ctx context.Context, status lodestone.DeviceStatus, limit, offset int) ([]reportDevice, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
	if status != "" {
		q.Set("status", string(status))
	}
	var ans struct {
		Devices []reportDevice `json:"devices"`
	}
	err := s.r.getJSON(ctx, "/report/devices?"+q.Encode(), &ans)
	return ans.Devices, err
}

// telemetryPath is /faults or /devices/ID/faults (and so on) with the filter as query parameters.
func telemetryPath(what string, f lodestone.TelemetryFilter, extra url.Values) string {
	p := "/" + what
	if f.DeviceID != "" {
		p = "/devices/" + url.PathEscape(f.DeviceID) + p
	}
	q := url.Values{"limit": {strconv.Itoa(f.Limit)}}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	for k, v := range extra {
		q[k] = v
	}
	return p + "?" + q.Encode()
}

func (s remoteSource) faults(ctx context.Context, f lodestone.TelemetryFilter) ([]reportFault, error) {
	var ans struct {
		Faults []reportFault `json:"faults"`
	}
	if err := s.r.getJSON(ctx, telemetryPath("faults", f, nil), &ans); err != nil {
		return nil, err
	}
	for i := range ans.Faults {
		// ferrite-server sends only the number.
		ans.Faults[i].FaultTypeName = chunk.FaultTypeName(ans.Faults[i].FaultType)
	}
	return ans.Faults, nil
}

func (s remoteSource) metrics(ctx context.Context, f lodestone.MetricFilter) ([]reportMetric, error) {
	var extra url.Values
	if f.Key != "" {
		extra = url.Values{"key": {f.Key}}
	}
	var ans struct {
		Metrics []reportMetric `json:"metrics"`
	}
	err := s.r.getJSON(ctx, telemetryPath("metrics", f.TelemetryFilter, extra), &ans)
	return ans.Metrics, err
}

// clip shortens s to n characters (not bytes: ferrite's byte cut panics inside a multi-byte character).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func printDevices(w io.Writer, rows []reportDevice) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No devices registered.")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "Device ID\tFirmware\tBuild ID\tStatus\tFaults\tMetrics\tReboots\tLast Seen")
	for _, d := range rows {
		fmt.Fprintf(tw, "%s\t%s\t0x%X\t%s\t%d\t%d\t%d\t%s\n", d.DeviceID, clip(d.FirmwareVersion, 24), d.BuildID,
			d.Status, d.FaultCount, d.MetricCount, d.RebootCount, d.LastSeen)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nTotal devices: %d\n", len(rows))
	return err
}

func printFaults(w io.Writer, rows []reportFault) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No fault events recorded.")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "Device\tType\tPC\tLR\tSymbol\tTime")
	for _, f := range rows {
		sym := "-"
		if f.Symbol != nil && *f.Symbol != "" {
			sym = clip(*f.Symbol, 48)
		}
		fmt.Fprintf(tw, "%s\t%s\t0x%08X\t0x%08X\t%s\t%s\n", f.DeviceID, f.FaultTypeName, f.PC, f.LR, sym, f.CreatedAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nShowing %d fault event(s).\n", len(rows))
	return err
}

var metricTypeNames = [...]string{"Counter", "Gauge", "Histo"}

func printMetrics(w io.Writer, rows []reportMetric) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No metrics recorded.")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "Device\tKey\tType\tValue\tTime")
	for _, m := range rows {
		typ := "?"
		if int(m.MetricType) < len(metricTypeNames) {
			typ = metricTypeNames[m.MetricType]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.DeviceID, clip(m.Key, 32), typ, clip(m.ValueJSON, 48), m.CreatedAt)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nShowing %d metric row(s).\n", len(rows))
	return err
}
