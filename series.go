package lodestone

import (
	"context"
	"math"
	"time"
)

// MaxSeriesBuckets bounds the buckets of one series whatever the range, so a chart never pulls raw points.
const MaxSeriesBuckets = 1000

// SeriesQuery asks for one metric key as time buckets.
type SeriesQuery struct {
	Key       string
	DeviceIDs []string // one series per device; empty with Fleet set: one series for the whole fleet
	Fleet     bool     // aggregate every device (optionally within GroupID or Tag) into one series
	GroupID   int64    // with Fleet: only members of this group
	Tag       string   // with Fleet: only devices carrying this tag
	From, To  time.Time
	// Step is the bucket width; zero or a width giving more than MaxSeriesBuckets buckets is widened so that the
	// range fits in MaxSeriesBuckets. A fleet series' step is whole minutes (FleetStep).
	Step time.Duration
}

// SeriesBucket summarizes the samples whose time falls in [Start, Start+Step). Histograms count with their min
// in Min and their max in Max. Buckets with no samples are omitted.
type SeriesBucket struct {
	Start time.Time
	Count int64
	Min   float64
	Max   float64
	Avg   float64
	Last  float64 // the value of the latest sample in the bucket
}

// Series is one device's (or the fleet's, DeviceID empty) buckets for a key, oldest first.
type Series struct {
	DeviceID string
	Key      string
	Step     time.Duration
	Buckets  []SeriesBucket
}

// SeriesReader computes metric series in the store, so only buckets cross to the caller.
type SeriesReader interface {
	MetricSeries(ctx context.Context, q SeriesQuery) ([]*Series, error)
}

// MaxSeriesDevices bounds the devices of one request: a chart overlays a handful of devices, and each device is
// one more series to compute.
const MaxSeriesDevices = 20

// FleetStep is what a fleet series' step is a multiple of: a store may keep per-minute totals of each key and
// build fleet buckets from them, never from more samples than the ends of the range hold.
const FleetStep = time.Minute

// seriesSteps are the bucket widths a widened step rounds up to, so chart axes fall on round times. Past the last
// one a widened step is a whole number of days.
var seriesSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// Normalize checks q and returns it with Step widened to fit MaxSeriesBuckets and truncated to whole milliseconds
// (the stores keep milliseconds); a fleet series' step is rounded up to whole minutes (FleetStep). Both stores
// call it, so a query is refused the same way on every backend.
// Buckets are aligned to the Unix epoch: bucket starts are multiples of Step, so the first bucket may start
// before From; only samples in [From, To) are counted.
func (q SeriesQuery) Normalize() (SeriesQuery, error) {
	switch {
	case q.Key == "":
		return q, Errorf(EINVALID, "series: a metric key is required")
	case q.From.IsZero() || q.To.IsZero():
		return q, Errorf(EINVALID, "series: from and to are required")
	case !q.To.After(q.From):
		return q, Errorf(EINVALID, "series: to (%s) must be after from (%s)", q.To.Format(time.RFC3339),
			q.From.Format(time.RFC3339))
	case q.From.UnixMilli() < 0:
		return q, Errorf(EINVALID, "series: from is before 1970")
	case q.Step < 0:
		return q, Errorf(EINVALID, "series: step must not be negative")
	case q.Fleet && len(q.DeviceIDs) > 0:
		return q, Errorf(EINVALID, "series: ask for the fleet or for devices, not both")
	case !q.Fleet && len(q.DeviceIDs) == 0:
		return q, Errorf(EINVALID, "series: name at least one device, or the fleet")
	case len(q.DeviceIDs) > MaxSeriesDevices:
		return q, Errorf(EINVALID, "series: at most %d devices per request, got %d", MaxSeriesDevices,
			len(q.DeviceIDs))
	case !q.Fleet && (q.GroupID != 0 || q.Tag != ""):
		return q, Errorf(EINVALID, "series: group and tag scope the fleet series only")
	}
	seen := make(map[string]bool, len(q.DeviceIDs))
	ids := make([]string, 0, len(q.DeviceIDs))
	for _, id := range q.DeviceIDs {
		if id == "" {
			return q, Errorf(EINVALID, "series: empty device id")
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	q.DeviceIDs = ids
	q.Step = q.Step.Truncate(time.Millisecond)
	if q.Fleet {
		q.Step = fleetStep(q.Step)
	}
	if q.Step == 0 || q.Buckets() > MaxSeriesBuckets {
		q.Step = q.widen()
	}
	return q, nil
}

// fleetStep rounds a step up to whole FleetSteps, at least one.
func fleetStep(step time.Duration) time.Duration {
	r := step.Truncate(FleetStep)
	if (r < step || r == 0) && r <= math.MaxInt64-FleetStep {
		r += FleetStep
	}
	return r
}

// Buckets is how many epoch-aligned buckets of Step the range [From, To) touches.
func (q SeriesQuery) Buckets() int64 {
	step := q.Step.Milliseconds()
	if step <= 0 {
		return 0
	}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	return (to-1)/step - from/step + 1
}

// widen returns the smallest round step at least Step for which the range fits in MaxSeriesBuckets.
func (q SeriesQuery) widen() time.Duration {
	for _, s := range seriesSteps {
		if s < q.Step {
			continue
		}
		if w := (SeriesQuery{From: q.From, To: q.To, Step: s}); w.Buckets() <= MaxSeriesBuckets {
			return s
		}
	}
	day := 24 * time.Hour
	days := max(q.To.Sub(q.From)/day/(MaxSeriesBuckets-1), 1)
	for {
		if w := (SeriesQuery{From: q.From, To: q.To, Step: days * day}); w.Buckets() <= MaxSeriesBuckets &&
			days*day >= q.Step {
			return days * day
		}
		days++
	}
}
