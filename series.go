package lodestone

import (
	"context"
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
	// range fits in MaxSeriesBuckets.
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
