package metricblock

import (
	"database/sql"
	"math"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Partial is a series bucket's aggregate in a form that merges: a store's rows, its rollups and its sealed points
// of one bucket add up to the same bucket. Both backends scan their SQL aggregates into it, so a series reads the
// same whatever the database. The fields are SQL's: count(*), count(value), sum, min, max, and the time, row id and
// value of the last sample (NULL where SQL's aggregate is).
type Partial struct {
	N, NV           int64
	Total, Min, Max sql.NullFloat64
	LastAt          int64
	LastID          int64
	Last            sql.NullFloat64
}

// Merge adds o to p.
func (p *Partial) Merge(o *Partial) {
	if p.N == 0 {
		*p = *o
		return
	}
	p.N, p.NV = p.N+o.N, p.NV+o.NV
	if o.Total.Valid {
		p.Total.Float64, p.Total.Valid = p.Total.Float64+o.Total.Float64, true
	}
	if o.Min.Valid && (!p.Min.Valid || o.Min.Float64 < p.Min.Float64) {
		p.Min = o.Min
	}
	if o.Max.Valid && (!p.Max.Valid || o.Max.Float64 > p.Max.Float64) {
		p.Max = o.Max
	}
	if o.LastAt > p.LastAt || (o.LastAt == p.LastAt && o.LastID > p.LastID) {
		p.LastAt, p.LastID, p.Last = o.LastAt, o.LastID, o.Last
	}
}

// AddPoint adds a sealed sample, as the stores' series aggregates add a row: a histogram (type 2) counts the middle
// of its range as its value and its max as its maximum; NaN stands for SQL's NULL.
func (p *Partial) AddPoint(pt *Point) {
	v := pt.Value
	if pt.Type == 2 {
		v = (pt.Value + pt.Max) / 2
	}
	p.N++
	if !math.IsNaN(v) {
		p.NV++
		p.Total.Float64 += v
		p.Total.Valid = true
	}
	if !math.IsNaN(pt.Value) && (!p.Min.Valid || pt.Value < p.Min.Float64) {
		p.Min = sql.NullFloat64{Float64: pt.Value, Valid: true}
	}
	m := pt.Value
	if pt.Type == 2 {
		m = pt.Max
	}
	if !math.IsNaN(m) && (!p.Max.Valid || m > p.Max.Float64) {
		p.Max = sql.NullFloat64{Float64: m, Valid: true}
	}
	if p.N == 1 || pt.At > p.LastAt || (pt.At == p.LastAt && pt.ID > p.LastID) {
		p.LastAt, p.LastID = pt.At, pt.ID
		p.Last = sql.NullFloat64{Float64: v, Valid: !math.IsNaN(v)}
	}
}

// Bucket is the finished bucket starting at start; NaN where no sample had a value.
func (p *Partial) Bucket(start time.Time) lodestone.SeriesBucket {
	avg := math.NaN()
	if p.NV > 0 && p.Total.Valid {
		avg = p.Total.Float64 / float64(p.NV)
	}
	return lodestone.SeriesBucket{Start: start, Count: p.N, Min: nan(p.Min), Max: nan(p.Max), Avg: avg,
		Last: nan(p.Last)}
}

func nan(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}
