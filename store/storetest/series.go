package storetest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func seriesReader(t *testing.T, s lodestone.Store) lodestone.SeriesReader {
	t.Helper()
	r, ok := s.(lodestone.SeriesReader)
	if !ok {
		t.Fatalf("%T does not implement lodestone.SeriesReader", s)
	}
	return r
}

func gauge(key string, v float64) lodestone.Metric {
	return lodestone.Metric{Key: key, Type: lodestone.MetricGauge, Value: v}
}

// seriesFixture writes the samples the series cases read. Minute buckets from base:
// device a, key temp: [0,60) 10 20; [60,120) 5 7; [180,240) 1; [240,300) 3 then 4 in one batch; and samples just
// outside [0,300). Device b (group g): counter 100 at 30 s. Device c (group g, tag roof): 50 at 40 s.
// Device h: histograms min/max 1/9 at 5 s and 2/20 at 6 s.
func seriesFixture(t *testing.T, s lodestone.Store) (group int64) {
	ctx := context.Background()
	for _, w := range []struct {
		sec int
		v   []float64
	}{{-1, []float64{999}}, {0, []float64{10}}, {10, []float64{20}}, {70, []float64{5}}, {75, []float64{7}},
		{200, []float64{1}}, {250, []float64{3, 4}}, {300, []float64{999}}} {
		b := &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(w.sec)}
		for _, v := range w.v {
			b.Metrics = append(b.Metrics, gauge("temp", v), gauge("other", -v))
		}
		write(t, s, b)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "b", ReceivedAt: at(30), Metrics: []lodestone.Metric{
		{Key: "temp", Type: lodestone.MetricCounter, Value: 100}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "c", ReceivedAt: at(40), Metrics: []lodestone.Metric{gauge("temp", 50)}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "h", ReceivedAt: at(5), Metrics: []lodestone.Metric{
		{Key: "lat", Type: lodestone.MetricHistogram, Value: 1, Max: 9}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "h", ReceivedAt: at(6), Metrics: []lodestone.Metric{
		{Key: "lat", Type: lodestone.MetricHistogram, Value: 2, Max: 20}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "idle", ReceivedAt: at(1)})
	if _, err := s.UpdateDevice(ctx, "c", lodestone.DeviceUpdate{Tags: sp("roof")}); err != nil {
		t.Fatal(err)
	}
	g := &lodestone.Group{Name: "g", CreatedAt: at(0)}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b", "c"} {
		if err := s.AddGroupDevice(ctx, g.ID, id, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	return g.ID
}

// bucket is a bucket expected at base+sec.
func bucket(sec int, n int64, mn, mx, avg, last float64) lodestone.SeriesBucket {
	return lodestone.SeriesBucket{Start: at(sec), Count: n, Min: mn, Max: mx, Avg: avg, Last: last}
}

func checkSeries(t *testing.T, what string, got *lodestone.Series, device string, step time.Duration,
	want ...lodestone.SeriesBucket) {
	t.Helper()
	if got.DeviceID != device || got.Step != step {
		t.Errorf("%s: series of %q step %v, want %q step %v", what, got.DeviceID, got.Step, device, step)
	}
	if got.Buckets == nil {
		t.Errorf("%s: nil buckets, want an empty slice", what)
	}
	if len(got.Buckets) != len(want) {
		t.Fatalf("%s: %d buckets %+v, want %d %+v", what, len(got.Buckets), got.Buckets, len(want), want)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for i, w := range want {
		g := got.Buckets[i]
		if !g.Start.Equal(w.Start) || g.Count != w.Count || !near(g.Min, w.Min) || !near(g.Max, w.Max) ||
			!near(g.Avg, w.Avg) || !near(g.Last, w.Last) {
			t.Errorf("%s: bucket %d = %+v, want %+v", what, i, g, w)
		}
	}
}

func testSeriesDevices(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	seriesFixture(t, s)
	r := seriesReader(t, s)
	q := lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"a"}, From: at(0), To: at(300), Step: time.Minute}
	got, err := r.MetricSeries(ctx, q)
	if err != nil || len(got) != 1 {
		t.Fatalf("one device: %v, %v", got, err)
	}
	if got[0].Key != "temp" {
		t.Errorf("key %q", got[0].Key)
	}
	// The empty minute [120,180) is omitted; the last of [240,300) is the later sample of one batch.
	checkSeries(t, "device a", got[0], "a", time.Minute, bucket(0, 2, 10, 20, 15, 20), bucket(60, 2, 5, 7, 6, 7),
		bucket(180, 1, 1, 1, 1, 1), bucket(240, 2, 3, 4, 3.5, 4))

	// A range that cuts a bucket counts only the samples inside it; the bucket keeps its aligned start.
	q.From, q.To = at(5), at(72)
	got, err = r.MetricSeries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	checkSeries(t, "device a [5,72)", got[0], "a", time.Minute, bucket(0, 1, 20, 20, 20, 20),
		bucket(60, 1, 5, 5, 5, 5))

	// Several devices: one series each, in the order asked; a device without the key has no buckets.
	q = lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"b", "idle", "a"}, From: at(0), To: at(120),
		Step: time.Minute}
	got, err = r.MetricSeries(ctx, q)
	if err != nil || len(got) != 3 {
		t.Fatalf("three devices: %v, %v", got, err)
	}
	checkSeries(t, "device b", got[0], "b", time.Minute, bucket(0, 1, 100, 100, 100, 100))
	checkSeries(t, "device idle", got[1], "idle", time.Minute)
	checkSeries(t, "device a of three", got[2], "a", time.Minute, bucket(0, 2, 10, 20, 15, 20),
		bucket(60, 2, 5, 7, 6, 7))

	// Histograms: min of the minimums, max of the maximums; average and last use each sample's midpoint.
	got, err = r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "lat", DeviceIDs: []string{"h"}, From: at(0),
		To: at(60), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	checkSeries(t, "histogram", got[0], "h", time.Minute, bucket(0, 2, 1, 20, 8, 11))

	// No data: an unknown key, or a range with no samples, gives empty series.
	for _, q := range []lodestone.SeriesQuery{
		{Key: "never", DeviceIDs: []string{"a", "b"}, From: at(0), To: at(300), Step: time.Minute},
		{Key: "temp", DeviceIDs: []string{"a", "b"}, From: at(1000), To: at(2000), Step: time.Minute},
	} {
		got, err := r.MetricSeries(ctx, q)
		if err != nil || len(got) != 2 {
			t.Fatalf("no data %+v: %v, %v", q, got, err)
		}
		checkSeries(t, "no data a", got[0], "a", time.Minute)
		checkSeries(t, "no data b", got[1], "b", time.Minute)
	}
	// A device that does not exist is not found.
	_, err = r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"a", "ghost"}, From: at(0),
		To: at(60)})
	if code(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown device: %v", err)
	}
}

func testSeriesFleet(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	g := seriesFixture(t, s)
	r := seriesReader(t, s)
	for _, c := range []struct {
		name string
		q    lodestone.SeriesQuery
		want []lodestone.SeriesBucket
	}{
		// [0,60): a 10 20, b 100, c 50 (the latest, at 40 s); the rest is a's.
		{"fleet", lodestone.SeriesQuery{}, []lodestone.SeriesBucket{bucket(0, 4, 10, 100, 45, 50),
			bucket(60, 2, 5, 7, 6, 7), bucket(180, 1, 1, 1, 1, 1), bucket(240, 2, 3, 4, 3.5, 4)}},
		{"group", lodestone.SeriesQuery{GroupID: g}, []lodestone.SeriesBucket{bucket(0, 2, 50, 100, 75, 50)}},
		{"tag", lodestone.SeriesQuery{Tag: "roof"}, []lodestone.SeriesBucket{bucket(0, 1, 50, 50, 50, 50)}},
		{"group and tag", lodestone.SeriesQuery{GroupID: g, Tag: "roof"},
			[]lodestone.SeriesBucket{bucket(0, 1, 50, 50, 50, 50)}},
		{"unknown tag", lodestone.SeriesQuery{Tag: "nowhere"}, nil},
		{"unknown group", lodestone.SeriesQuery{GroupID: g + 100}, nil},
		{"unknown key", lodestone.SeriesQuery{Key: "never"}, nil},
		// A two-minute step merges [0,120).
		{"wider step", lodestone.SeriesQuery{Step: 2 * time.Minute}, []lodestone.SeriesBucket{
			bucket(0, 6, 5, 100, 32, 7), bucket(120, 1, 1, 1, 1, 1), bucket(240, 2, 3, 4, 3.5, 4)}},
	} {
		q := c.q
		q.Fleet, q.From, q.To = true, at(0), at(300)
		if q.Key == "" {
			q.Key = "temp"
		}
		if q.Step == 0 {
			q.Step = time.Minute
		}
		got, err := r.MetricSeries(ctx, q)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v, %v", c.name, got, err)
		}
		checkSeries(t, c.name, got[0], "", q.Step, c.want...)
	}
}

func testSeriesStep(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	r := seriesReader(t, s)
	// One sample a minute for a day and a half.
	var batches []*lodestone.DeviceBatch
	for m := range 36 * 60 {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(m * 60),
			Metrics: []lodestone.Metric{{Key: "n", Type: lodestone.MetricCounter, Value: float64(m)}}})
	}
	write(t, s, batches...)
	for _, c := range []struct {
		name     string
		from, to time.Time
		step     time.Duration
		want     time.Duration
	}{
		{"fits", at(0), at(3600), time.Minute, time.Minute},
		{"zero step, one hour", at(0), at(3600), 0, 5 * time.Second},
		{"too fine for a day", at(0), at(86400), time.Second, 2 * time.Minute},
		{"zero step, a day and a half", at(0), at(36 * 3600), 0, 5 * time.Minute},
		{"odd step kept", at(0), at(86400), 7 * time.Minute, 7 * time.Minute},
		{"sub-millisecond truncated", at(0), at(600), time.Minute + time.Microsecond, time.Minute},
		{"ten years", at(0), at(0).AddDate(10, 0, 0), time.Hour, 4 * 24 * time.Hour},
	} {
		got, err := r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "n", DeviceIDs: []string{"d"}, From: c.from,
			To: c.to, Step: c.step})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sr := got[0]
		if sr.Step != c.want {
			t.Errorf("%s: step %v, want %v", c.name, sr.Step, c.want)
		}
		if n := len(sr.Buckets); n == 0 || n > lodestone.MaxSeriesBuckets {
			t.Errorf("%s: %d buckets", c.name, n)
		}
		var total int64
		for i, b := range sr.Buckets {
			total += b.Count
			if b.Start.UnixMilli()%sr.Step.Milliseconds() != 0 {
				t.Errorf("%s: bucket %d starts at %v, not a multiple of %v", c.name, i, b.Start, sr.Step)
			}
			if i > 0 && !b.Start.After(sr.Buckets[i-1].Start) {
				t.Errorf("%s: bucket %d out of order", c.name, i)
			}
		}
		end := c.to
		if last := at(36 * 3600); end.After(last) {
			end = last
		}
		if want := int64((end.Sub(c.from) + time.Minute - 1) / time.Minute); total != want {
			t.Errorf("%s: %d samples in buckets, want %d", c.name, total, want)
		}
	}
	// Per-bucket values of the widened day: 2-minute buckets hold minutes 2k and 2k+1.
	got, err := r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "n", DeviceIDs: []string{"d"}, From: at(0),
		To: at(86400)})
	if err != nil {
		t.Fatal(err)
	}
	if b := got[0].Buckets[10]; b.Count != 2 || b.Min != 20 || b.Max != 21 || b.Avg != 20.5 || b.Last != 21 {
		t.Errorf("widened bucket 10: %+v", b)
	}
	// A fleet series' step is whole minutes: rounded up, at least one, then widened as for devices.
	for _, c := range []struct {
		from, to   time.Time
		step, want time.Duration
	}{
		{at(0), at(3600), 0, time.Minute},
		{at(0), at(3600), 5 * time.Second, time.Minute},
		{at(0), at(3600), 90 * time.Second, 2 * time.Minute},
		{at(0), at(3600), 3 * time.Minute, 3 * time.Minute},
		{at(0), at(86400), time.Second, 2 * time.Minute},
		{at(30), at(90), 0, time.Minute},
	} {
		got, err := r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "n", Fleet: true, From: c.from, To: c.to,
			Step: c.step})
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, b := range got[0].Buckets {
			total += b.Count
		}
		want := int64((c.to.Sub(c.from) + time.Minute - 1) / time.Minute)
		if got[0].Step != c.want || total != want {
			t.Errorf("fleet [%v, %v) step %v: step %v with %d samples, want %v with %d", c.from, c.to, c.step,
				got[0].Step, total, c.want, want)
		}
	}
}

func testSeriesInvalid(t *testing.T, s lodestone.Store) {
	r := seriesReader(t, s)
	write(t, s, &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(0), Metrics: []lodestone.Metric{gauge("k", 1)}})
	many := make([]string, lodestone.MaxSeriesDevices+1)
	for i := range many {
		many[i] = "a"
	}
	ok := lodestone.SeriesQuery{Key: "k", DeviceIDs: []string{"a"}, From: at(0), To: at(60)}
	for name, edit := range map[string]func(q *lodestone.SeriesQuery){
		"no key":              func(q *lodestone.SeriesQuery) { q.Key = "" },
		"no from":             func(q *lodestone.SeriesQuery) { q.From = time.Time{} },
		"no to":               func(q *lodestone.SeriesQuery) { q.To = time.Time{} },
		"to before from":      func(q *lodestone.SeriesQuery) { q.From, q.To = q.To, q.From },
		"empty range":         func(q *lodestone.SeriesQuery) { q.To = q.From },
		"before 1970":         func(q *lodestone.SeriesQuery) { q.From = time.Unix(-10, 0) },
		"negative step":       func(q *lodestone.SeriesQuery) { q.Step = -time.Second },
		"no devices":          func(q *lodestone.SeriesQuery) { q.DeviceIDs = nil },
		"devices and fleet":   func(q *lodestone.SeriesQuery) { q.Fleet = true },
		"too many devices":    func(q *lodestone.SeriesQuery) { q.DeviceIDs = many },
		"empty device id":     func(q *lodestone.SeriesQuery) { q.DeviceIDs = []string{"a", ""} },
		"group without fleet": func(q *lodestone.SeriesQuery) { q.GroupID = 1 },
		"tag without fleet":   func(q *lodestone.SeriesQuery) { q.Tag = "x" },
	} {
		q := ok
		edit(&q)
		if _, err := r.MetricSeries(context.Background(), q); code(err) != lodestone.EINVALID {
			t.Errorf("%s: %v, want %s", name, err, lodestone.EINVALID)
		}
	}
	if _, err := r.MetricSeries(context.Background(), ok); err != nil {
		t.Fatalf("valid query: %v", err)
	}
}

// refSample is a written sample, for the reference aggregate the fleet cases compare with.
type refSample struct {
	dev      string
	at       time.Time
	typ      lodestone.MetricType
	val, max float64
}

// refSeries aggregates samples the way SeriesBucket documents, in Go: the reference for the stores' SQL.
func refSeries(samples []refSample, from, to time.Time, step time.Duration) []lodestone.SeriesBucket {
	var out []lodestone.SeriesBucket
	var sums []float64
	var nvs []int
	stepMS := step.Milliseconds()
	for _, s := range samples { // written in time order, so a later sample is the later one of equal times
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		start := time.UnixMilli(s.at.UnixMilli() / stepMS * stepMS).UTC()
		if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
			out = append(out, lodestone.SeriesBucket{Start: start, Min: math.NaN(), Max: math.NaN()})
			sums, nvs = append(sums, 0), append(nvs, 0)
		}
		b, i := &out[len(out)-1], len(out)-1
		mx, v := s.val, s.val
		if s.typ == lodestone.MetricHistogram {
			mx, v = s.max, (s.val+s.max)/2
		}
		b.Count++
		if !math.IsNaN(s.val) && (math.IsNaN(b.Min) || s.val < b.Min) {
			b.Min = s.val
		}
		if !math.IsNaN(mx) && (math.IsNaN(b.Max) || mx > b.Max) {
			b.Max = mx
		}
		if !math.IsNaN(v) {
			sums[i] += v
			nvs[i]++
		}
		b.Last = v
	}
	for i := range out {
		out[i].Avg = math.NaN()
		if nvs[i] > 0 {
			out[i].Avg = sums[i] / float64(nvs[i])
		}
	}
	return out
}

func sameBuckets(got, want []lodestone.SeriesBucket) bool {
	if len(got) != len(want) {
		return false
	}
	near := func(a, b float64) bool { return math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-9 }
	for i, w := range want {
		g := got[i]
		if !g.Start.Equal(w.Start) || g.Count != w.Count || !near(g.Min, w.Min) || !near(g.Max, w.Max) ||
			!near(g.Avg, w.Avg) || !near(g.Last, w.Last) {
			return false
		}
	}
	return true
}

// testSeriesFleetHours: fleet series with steps of whole hours and ranges that cut hours agree with the samples,
// also after a device and its samples are deleted (a store may keep hourly totals; they must follow).
func testSeriesFleetHours(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	r := seriesReader(t, s)
	var samples []refSample
	var batches []*lodestone.DeviceBatch
	for i := range 400 {
		dev := fmt.Sprintf("d%d", i%4)
		b := &lodestone.DeviceBatch{DeviceID: dev, ReceivedAt: base.Add(time.Duration(i) * 97 * time.Second)}
		n := 1 + i%3 // several samples of one batch share its time
		for j := range n {
			m := lodestone.Metric{Key: "k", Type: lodestone.MetricGauge, Value: float64((i*31+j*7)%101) - 50}
			switch {
			case dev == "d3":
				m.Type, m.Max = lodestone.MetricHistogram, m.Value+float64(i%13)
			case i%17 == 0:
				m.Value = math.NaN()
			case dev == "d2":
				m.Type = lodestone.MetricCounter
				m.Value = float64(i)
			}
			b.Metrics = append(b.Metrics, m, lodestone.Metric{Key: "other", Type: lodestone.MetricGauge, Value: 1})
			samples = append(samples, refSample{dev, b.ReceivedAt, m.Type, m.Value, m.Max})
		}
		batches = append(batches, b)
	}
	write(t, s, batches...)
	check := func(what string) {
		t.Helper()
		for _, c := range []struct {
			from, to time.Time
			step     time.Duration
		}{
			{base, base.Add(11 * time.Hour), time.Hour},
			{base.Add(13 * time.Minute), base.Add(9*time.Hour + 5*time.Minute), time.Hour},
			{base.Add(-3 * time.Hour), base.Add(20 * time.Hour), 2 * time.Hour},
			{base.Add(30 * time.Minute), base.Add(50 * time.Minute), time.Hour},
			{base.Add(-24 * time.Hour), base.Add(24 * time.Hour), 24 * time.Hour},
			{base.Add(time.Hour), base.Add(5 * time.Hour), 30 * time.Minute},
			// Ends inside minutes, and a range inside one minute: a store summing minutes reads these samples.
			{base.Add(13*time.Minute + 17*time.Second), base.Add(3*time.Hour + 41*time.Second + 250*time.Millisecond),
				5 * time.Minute},
			{base.Add(2*time.Hour + 500*time.Millisecond), base.Add(2*time.Hour + 50*time.Second), time.Minute},
			{base.Add(97*time.Second + time.Millisecond), base.Add(40*97*time.Second + time.Millisecond), time.Minute},
		} {
			got, err := r.MetricSeries(ctx, lodestone.SeriesQuery{Key: "k", Fleet: true, From: c.from, To: c.to,
				Step: c.step})
			if err != nil {
				t.Fatal(err)
			}
			if want := refSeries(samples, c.from, c.to, c.step); !sameBuckets(got[0].Buckets, want) {
				t.Errorf("%s: fleet [%v, %v) step %v:\n got %+v\nwant %+v", what, c.from, c.to, c.step,
					got[0].Buckets, want)
			}
		}
	}
	check("written")
	// More samples in hours that already have some.
	more := &lodestone.DeviceBatch{DeviceID: "d0", ReceivedAt: base.Add(2*time.Hour + time.Second),
		Metrics: []lodestone.Metric{gauge("k", 1000), gauge("k", -1000)}}
	write(t, s, more)
	samples = append(samples, refSample{"d0", more.ReceivedAt, lodestone.MetricGauge, 1000, 0},
		refSample{"d0", more.ReceivedAt, lodestone.MetricGauge, -1000, 0})
	slices.SortStableFunc(samples, func(a, b refSample) int { return a.at.Compare(b.at) })
	check("added to")
	if err := s.DeleteDevice(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	samples = slices.DeleteFunc(samples, func(s refSample) bool { return s.dev == "d1" })
	check("after a delete")
	check("again after a delete")
}
