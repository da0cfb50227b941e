// Package fleetfill fills a store with a large, deterministic fleet for benchmarks: devices with names, tags,
// keys, firmware versions and groups, and metric samples written through the store's batch write path
// (WriteTelemetry), the way ingest writes them. CachedSQLite keeps a filled SQLite file between runs.
package fleetfill

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Config shapes the fleet. The zero value of a field takes Default's.
type Config struct {
	Devices int           // devices in the fleet
	Points  int           // metric samples in all
	Busy    int           // the first Busy devices report every key every BusyEvery over the whole span
	End     time.Time     // the newest sample is before End
	Span    time.Duration // samples spread over [End-Span, End)
	// BusyEvery is how often a busy device reports; the other devices share the remaining points, a session of
	// every key at a time, at random times.
	BusyEvery time.Duration
	Seed      uint64
	// FaultRate is the share of sessions that report a fault, and the share that report an unexpected
	// (watchdog) reboot; the newest firmware (2.0.0) faults twice as often. Zero, the default, reports neither.
	FaultRate float64
}

// Default is the benchmark's fleet: 100,000 devices, 10 million samples over 30 days, of which ten devices report
// every 5 minutes (86,400 samples each) and the rest about nine sessions each.
func Default() Config {
	return Config{Devices: 100_000, Points: 10_000_000, Busy: 10, BusyEvery: 5 * time.Minute,
		End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Span: 30 * 24 * time.Hour, Seed: 14}
}

func (c Config) withDefaults() Config {
	d := Default()
	c.Devices = cmp.Or(c.Devices, d.Devices)
	c.Points = cmp.Or(c.Points, d.Points)
	c.Busy = min(cmp.Or(c.Busy, d.Busy), c.Devices)
	c.BusyEvery = cmp.Or(c.BusyEvery, d.BusyEvery)
	if c.End.IsZero() {
		c.End = d.End
	}
	c.Span = cmp.Or(c.Span, d.Span)
	c.Seed = cmp.Or(c.Seed, d.Seed)
	return c
}

// Keys are the metric keys every session reports: gauges, counters and one histogram.
var Keys = []string{"temp", "battery_mv", "rssi", "heap_free", "cpu_load", "uptime_s", "tx_bytes", "rx_bytes",
	"boot_count", "latency_ms"}

// Firmware are the versions in the fleet, the newest the most common.
var Firmware = []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"}

// Tags are the tags devices carry; "pilot" is rare (1 in 100 devices).
var Tags = []string{"roof", "lab", "field", "warehouse", "basement"}

// cities start device names, independently of the tags.
var cities = []string{"Oslo", "Lyon", "Porto", "Graz", "Turku", "Split", "Gent"}

// Groups are the groups made, with their sizes: members are the devices at evenly spaced ids.
var Groups = []struct {
	Name string
	Size int
}{{"pilot-site", 1_000}, {"eu-west", 5_000}}

// DeviceID is the device_id of the i-th device.
func DeviceID(i int) string { return fmt.Sprintf("dev-%06d", i) }

// Firmware version of the i-th device.
func firmware(i int) string {
	switch h := i * 2654435761 % 100; {
	case h < 5:
		return Firmware[0]
	case h < 15:
		return Firmware[1]
	case h < 30:
		return Firmware[2]
	case h < 50:
		return Firmware[3]
	}
	return Firmware[4]
}

type session struct {
	at  int64 // Unix ms
	dev int32
}

// Fill writes the fleet into s. It takes minutes for the default fleet; progress, when not nil, is called after
// each written transaction with the samples written so far.
func Fill(ctx context.Context, s lodestone.Store, c Config, progress func(points int)) error {
	c = c.withDefaults()
	rng := rand.New(rand.NewPCG(c.Seed, 1))
	start, end := c.End.Add(-c.Span).UnixMilli(), c.End.UnixMilli()
	every := c.BusyEvery.Milliseconds()
	var sessions []session
	for d := range c.Busy {
		for t := start + int64(d)*1000; t < end; t += every {
			sessions = append(sessions, session{t, int32(d)})
		}
	}
	rest := max(c.Points/len(Keys)-len(sessions), c.Devices-c.Busy)
	for i := range rest {
		d := c.Busy + i%(c.Devices-c.Busy)
		sessions = append(sessions, session{start + rng.Int64N(end-start), int32(d)})
	}
	// Written in time order, as ingest writes them.
	slices.SortFunc(sessions, func(a, b session) int { return cmp.Compare(a.at, b.at) })

	const perTx = 2000
	var batches []*lodestone.DeviceBatch
	counts := make([]uint32, c.Devices) // sessions so far per device, for the counters
	written := 0
	for i, ss := range sessions {
		counts[ss.dev]++
		b := sessionBatch(ss, counts[ss.dev], int(ss.dev), rng)
		if c.FaultRate > 0 {
			rate := c.FaultRate
			if b.Info.FirmwareVersion == Firmware[len(Firmware)-1] {
				rate *= 2
			}
			if rng.Float64() < rate {
				b.Faults = []lodestone.Fault{{FaultType: 1, Registers: lodestone.Registers{PC: 0x0800_0000 + uint32(ss.dev%5)*4}}}
			}
			if rng.Float64() < c.FaultRate {
				b.Reboots = []lodestone.Reboot{{Reason: 3}}
			}
		}
		batches = append(batches, b)
		if len(batches) == perTx || i == len(sessions)-1 {
			if err := s.WriteTelemetry(ctx, batches); err != nil {
				return fmt.Errorf("fleetfill: write telemetry: %w", err)
			}
			written += len(batches) * len(Keys)
			batches = batches[:0]
			if progress != nil {
				progress(written)
			}
		}
	}
	return register(ctx, s, c, end)
}

func sessionBatch(ss session, n uint32, d int, rng *rand.Rand) *lodestone.DeviceBatch {
	at := time.UnixMilli(ss.at).UTC()
	day := float64(ss.at%86_400_000) / 86_400_000 * 2 * math.Pi
	g := func(key string, v float64) lodestone.Metric {
		return lodestone.Metric{Key: key, Type: lodestone.MetricGauge, Value: v}
	}
	ctr := func(key string, v float64) lodestone.Metric {
		return lodestone.Metric{Key: key, Type: lodestone.MetricCounter, Value: v}
	}
	lat := 5 + rng.Float64()*20
	return &lodestone.DeviceBatch{DeviceID: DeviceID(d), ReceivedAt: at,
		Info: &lodestone.DeviceInfo{FirmwareVersion: firmware(d), BuildID: uint64(1 + d%7)},
		Metrics: []lodestone.Metric{
			g("temp", 20+5*math.Sin(day)+rng.NormFloat64()),
			g("battery_mv", 4200-float64(n%1000)+rng.Float64()*10),
			g("rssi", -60+rng.NormFloat64()*8),
			g("heap_free", 30_000+rng.Float64()*5_000),
			g("cpu_load", rng.Float64()),
			ctr("uptime_s", float64(n)*300),
			ctr("tx_bytes", float64(n)*1024),
			ctr("rx_bytes", float64(n)*2048),
			ctr("boot_count", float64(1+n/100)),
			{Key: "latency_ms", Type: lodestone.MetricHistogram, Value: lat, Max: lat + rng.Float64()*100},
		}}
}

// register names and tags the devices and gives them keys (in bulk), makes the groups, and marks the devices
// silent for an hour before the end offline.
func register(ctx context.Context, s lodestone.Store, c Config, end int64) error {
	const perTx = 1000
	at := time.UnixMilli(end).UTC()
	for lo := 0; lo < c.Devices; lo += perTx {
		var regs []lodestone.DeviceRegistration
		for i := lo; i < min(lo+perTx, c.Devices); i++ {
			r := lodestone.DeviceRegistration{DeviceID: DeviceID(i), Key: uint32(i + 1), At: at}
			if i%2 == 0 {
				r.Name = ptr(fmt.Sprintf("%s sensor %d", cities[i/2%len(cities)], i))
			}
			tags := Tags[i%len(Tags)]
			if i%100 == 7 {
				tags += ",pilot"
			}
			r.Tags = &tags
			regs = append(regs, r)
		}
		res, err := s.RegisterDevices(ctx, regs)
		if err != nil {
			return fmt.Errorf("fleetfill: register devices: %w", err)
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("fleetfill: register device: %w", r.Err)
			}
		}
	}
	for _, gr := range Groups {
		g := &lodestone.Group{Name: gr.Name, CreatedAt: at}
		if err := s.CreateGroup(ctx, g); err != nil {
			return fmt.Errorf("fleetfill: create group: %w", err)
		}
		size := min(gr.Size, c.Devices)
		for k := range size {
			if err := s.AddGroupDevice(ctx, g.ID, DeviceID(k*c.Devices/size), at); err != nil {
				return fmt.Errorf("fleetfill: add group member: %w", err)
			}
		}
	}
	if _, err := s.MarkOffline(ctx, at.Add(-time.Hour)); err != nil {
		return fmt.Errorf("fleetfill: mark offline: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
