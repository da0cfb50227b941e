package metricblock

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Page merges sealed points into a page of FindMetrics: newest first (time, then row id), offset then limit. A
// store reads the rows of the page's window first (the newest limit+offset of them), then its blocks newest first
// by t_max, adding each while Reaches says it can still hold points of the page. Both backends read through it,
// so rows and blocks merge the same way whatever the database.
type Page struct {
	need, offset int
	since, until int64 // Unix ms; the filter's range, [since, until)
	out          []*lodestone.Metric
	sorted       bool
	keyOf        map[*lodestone.Metric]int64 // sealed points, named by Name
}

// NewPage starts a page of limit metrics after offset, over rows (sorted by Newer, at most limit+offset of them)
// and the blocks of the range [since, until) (zero times: unbounded).
func NewPage(rows []*lodestone.Metric, limit, offset int, since, until time.Time) *Page {
	p := &Page{need: limit + offset, offset: offset, since: math.MinInt64, until: math.MaxInt64, out: rows,
		sorted: true, keyOf: map[*lodestone.Metric]int64{}}
	if !since.IsZero() {
		p.since = since.UnixMilli()
	}
	if !until.IsZero() {
		p.until = until.UnixMilli()
	}
	return p
}

// Since and Until are the range in Unix ms (math.MinInt64 and math.MaxInt64 when unbounded).
func (p *Page) Since() int64 { return p.since }
func (p *Page) Until() int64 { return p.until }

// MinTMax is the least t_max a block may have and still hold a point of the page: the range's start, or the
// oldest row when the rows alone fill the page.
func (p *Page) MinTMax() int64 {
	lo := p.since
	if len(p.out) >= p.need {
		lo = max(lo, p.out[p.need-1].ReceivedAt.UnixMilli())
	}
	return lo
}

// Reaches reports whether a block ending at tMax can still hold points of the page; blocks come newest first, so
// once it is false no later block can either.
func (p *Page) Reaches(tMax int64) bool {
	if len(p.out) < p.need {
		return true
	}
	if !p.sorted {
		slices.SortFunc(p.out, Newer)
		p.out, p.sorted = p.out[:p.need], true
	}
	return tMax >= p.out[p.need-1].ReceivedAt.UnixMilli()
}

// Add decodes a block of device row dev and key id key and adds its points in the range.
func (p *Page) Add(dev, key int64, data []byte) error {
	pts, err := DecodeBefore(data, p.until)
	if err != nil {
		return fmt.Errorf("metric block of key %d, device %d: %w", key, dev, err)
	}
	for i := range pts {
		pt := &pts[i]
		if pt.At < p.since || pt.At >= p.until {
			continue
		}
		m := &lodestone.Metric{ID: pt.ID, DeviceRowID: dev, Type: lodestone.MetricType(pt.Type), Value: pt.Value,
			Raw: pt.Raw, Ticks: uint64(pt.Ticks), ReceivedAt: time.UnixMilli(pt.At).UTC()}
		if m.Type == lodestone.MetricHistogram {
			m.Max = pt.Max
		}
		p.keyOf[m] = key
		p.out, p.sorted = append(p.out, m), false
	}
	return nil
}

// Metrics returns the page, and the device rows and key ids of its sealed points, whose DeviceID and Key are
// still empty: the store looks their names up (after its block query is done with its connection) and passes them
// to Name.
func (p *Page) Metrics() (page []*lodestone.Metric, devs, keys []int64) {
	if !p.sorted {
		slices.SortFunc(p.out, Newer)
		p.sorted = true
	}
	if p.offset >= len(p.out) {
		return []*lodestone.Metric{}, nil, nil
	}
	page = p.out[p.offset:min(len(p.out), p.need)]
	for _, m := range page {
		if k, ok := p.keyOf[m]; ok {
			devs, keys = append(devs, m.DeviceRowID), append(keys, k)
		}
	}
	return page, devs, keys
}

// Name sets the device id and key name of the page's sealed points.
func (p *Page) Name(page []*lodestone.Metric, devName, keyName map[int64]string) {
	for _, m := range page {
		if k, ok := p.keyOf[m]; ok {
			m.DeviceID, m.Key = devName[m.DeviceRowID], keyName[k]
		}
	}
}

// Newer orders metrics as FindMetrics does: newest first, then by row id.
func Newer(a, b *lodestone.Metric) int {
	if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}
