package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

var _ lodestone.SeriesReader = (*DB)(nil)

// seriesValue is what a sample contributes to a bucket's average and last value: a histogram its midpoint.
const seriesValue = `CASE WHEN %[1]stype = 2 THEN (%[1]svalue + %[1]smax) / 2 ELSE %[1]svalue END`

// rollupMS is the width of the rollups in metric_rollups (migration 00140): lodestone.FleetStep, so every fleet
// bucket is whole rollups.
const rollupMS = int64(lodestone.FleetStep / time.Millisecond)

// partial is a bucket's aggregate: the raw samples of a range, the 1-minute rollups of another and sealed points
// add up to the same bucket.
type partial = metricblock.Partial

// seriesPlan is a normalized query with its ids resolved.
type seriesPlan struct {
	q            lodestone.SeriesQuery
	key          int64
	step, origin int64   // ms; origin is the start of the bucket holding From
	rows         []int64 // device row ids, in q.DeviceIDs' order; none for the fleet
}

// bucketOf is the start of the bucket holding t (t >= origin).
func (p *seriesPlan) bucketOf(t int64) int64 { return p.origin + (t-p.origin)/p.step*p.step }

// MetricSeries implements lodestone.SeriesReader. Device series, and fleet series of a group or tag, are one
// GROUP BY over the rows of metrics_device_time (for a group or tag, one probe per member), which hold only the
// points younger than the sealing horizon, plus the sealed blocks. A fleet series (its
// step is whole minutes) adds up the 1-minute rollups (metric_rollups) and reads samples, by time, only for the
// partial minutes at its ends and for rollups that a delete made stale, which it then recomputes.
func (db *DB) MetricSeries(ctx context.Context, q lodestone.SeriesQuery) ([]*lodestone.Series, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	out, rows, err := db.seriesDevices(ctx, q)
	if err != nil {
		return nil, err
	}
	p := &seriesPlan{q: q, rows: rows, step: q.Step.Milliseconds()}
	p.origin = ms(q.From) / p.step * p.step // From is not negative (Normalize), so this is the floor
	err = db.r.QueryRowContext(ctx, `SELECT id FROM metric_keys WHERE name = ?`, q.Key).Scan(&p.key)
	if errors.Is(err, sql.ErrNoRows) {
		return out, nil // no device ever sent this key: every series is empty
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: series: resolve key %q: %w", q.Key, err)
	}
	// Partial buckets by device row (0 for the fleet) and bucket start.
	parts := make(map[int64]map[int64]*partial, len(out))
	add := func(dev, b int64, v *partial) {
		if parts[dev] == nil {
			parts[dev] = map[int64]*partial{}
		}
		if cur := parts[dev][b]; cur != nil {
			cur.Merge(v)
		} else {
			parts[dev][b] = v
		}
	}
	from, to := ms(q.From), ms(q.To)
	if q.Fleet && q.GroupID == 0 && q.Tag == "" && p.step%rollupMS == 0 { // Normalize makes the step whole minutes
		h0, h1 := (from+rollupMS-1)/rollupMS*rollupMS, to/rollupMS*rollupMS
		if h0 < h1 {
			dirty, err := db.seriesRollups(ctx, p, h0, h1, add)
			if err != nil {
				return nil, err
			}
			// The stale rollups and the partial ones at the ends come from the samples.
			ranges := append(dirty, [2]int64{from, h0}, [2]int64{h1, to})
			for _, r := range ranges {
				if r[0] < r[1] {
					if err := db.seriesRaw(ctx, p, r[0], r[1], add); err != nil {
						return nil, err
					}
				}
			}
			if len(dirty) > 0 {
				// The answer is whole without it; a failed refresh only means the next read scans again.
				if err := db.refreshRollups(ctx, p.key, dirty); err != nil && db.log != nil {
					db.log.Warn("sqlite: refresh metric rollups", "key", q.Key, "err", err)
				}
			}
			return fillSeries(out, p, parts), nil
		}
	}
	if err := db.seriesRaw(ctx, p, from, to, add); err != nil {
		return nil, err
	}
	return fillSeries(out, p, parts), nil
}

// fillSeries puts the merged buckets into the series, oldest first.
func fillSeries(out []*lodestone.Series, p *seriesPlan, parts map[int64]map[int64]*partial) []*lodestone.Series {
	for i, s := range out {
		var dev int64
		if !p.q.Fleet {
			dev = p.rows[i]
		}
		bs := parts[dev]
		// Buckets are few (at most MaxSeriesBuckets); walking them in order avoids sorting map keys.
		for b := p.origin; b < ms(p.q.To) && len(s.Buckets) < len(bs); b += p.step {
			if v := bs[b]; v != nil {
				s.Buckets = append(s.Buckets, v.Bucket(fromMS(b)))
			}
		}
	}
	return out
}

// seriesRaw aggregates the samples of [from, to) into partial buckets per device (or for the fleet).
func (db *DB) seriesRaw(ctx context.Context, p *seriesPlan, from, to int64, add func(dev, b int64, v *partial)) error {
	stmt, args := seriesRawQuery(p, from, to)
	res, err := db.rq.QueryContext(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("sqlite: series %q: %w", p.q.Key, err)
	}
	defer res.Close()
	for res.Next() {
		var d, b int64
		var v partial
		if err := res.Scan(&d, &b, &v.N, &v.NV, &v.Total, &v.Min, &v.Max, &v.LastAt, &v.LastID, &v.Last); err != nil {
			return fmt.Errorf("sqlite: series %q: scan: %w", p.q.Key, err)
		}
		add(d, b, &v)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("sqlite: series %q: %w", p.q.Key, err)
	}
	return seriesBlocks(ctx, db.rq, p, from, to, add)
}

// rollupQuery adds up the fresh rollups of a key in a range into partial buckets, in SQL: a month is 43,200
// rollups, which cost more to hand to Go one by one than to sum. A rollup's last sample is in its own minute, so
// the latest of a bucket's is in the rollup of the minute of their latest time: one lookup.
const rollupQuery = `SELECT x.b, x.n, x.nv, x.total, x.mn, x.mx, x.la,
		(SELECT r.last_value FROM metric_rollups r WHERE r.key_id = ?1 AND r.bucket = x.la - x.la % ?2)
		FROM (SELECT ?3 + (bucket - ?3) / ?4 * ?4 AS b, sum(n) AS n, sum(nv) AS nv, sum(total) AS total,
			min(mn) AS mn, max(mx) AS mx, max(last_at) AS la
		  FROM metric_rollups WHERE key_id = ?1 AND bucket >= ?5 AND bucket < ?6 AND dirty = 0
		  GROUP BY b) x`

// dirtyQuery lists the stale rollups of a key in a range, for seriesRollups.
const dirtyQuery = `SELECT bucket FROM metric_rollups WHERE key_id = ? AND bucket >= ? AND bucket < ? AND dirty <> 0
		ORDER BY bucket`

// seriesRawQuery is the statement of seriesRaw: partial buckets of the samples in [from, to), with the time and
// value of each bucket's last sample. Partials of one bucket always cover disjoint times, so merging them by the
// time of their last sample needs no row id.
func seriesRawQuery(p *seriesPlan, from, to int64) (string, []any) {
	q := p.q
	// filter is a prefix for the columns that only filter: in the last-value lookup, a unary + keeps SQLite from
	// probing the index once per group member and type for each bucket; it is to seek on key and time only.
	scope := func(a, filter string) (string, []any) {
		c := []string{a + "key_id = ?", filter + a + "type IN (0, 1, 2)"}
		args := []any{p.key}
		if q.GroupID != 0 {
			c = append(c, filter+a+"device_id IN (SELECT device_id FROM device_group_members WHERE group_id = ?)")
			args = append(args, q.GroupID)
		}
		if q.Tag != "" {
			c = append(c, filter+a+"device_id IN (SELECT device_id FROM device_tags WHERE tag = ?)")
			args = append(args, q.Tag)
		}
		return strings.Join(c, " AND "), args
	}
	lastScope, lastArgs := scope("l.", "+")
	innerScope, innerArgs := scope("", "")
	dev, group := "0", "b"
	var devArgs []any
	if !q.Fleet {
		dev, group = "device_id", "device_id, b"
		innerScope += " AND device_id IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(p.rows)), ", ") + ")"
		for _, r := range p.rows {
			devArgs = append(devArgs, r)
		}
		lastScope += " AND l.device_id = x.dev"
	}
	v := fmt.Sprintf(seriesValue, "")
	// Devices and group or tag members are probed by device and time: rows are only the recent points (sealing),
	// a few hundred a device. The whole fleet reads samples here only for parts of minutes (the rollups hold the
	// rest): by time, not every sample of the key.
	index := "metrics_device_time"
	if q.Fleet && q.GroupID == 0 && q.Tag == "" {
		index = "metrics_time"
	}
	// The last sample of a bucket is the one with the highest row id at the bucket's latest time: one probe by
	// device and time, or for a fleet among the samples of that millisecond.
	lastIndex := "metrics_time"
	if !q.Fleet {
		lastIndex = "metrics_device_time"
	}
	stmt := `SELECT x.dev, x.b, x.n, x.nv, x.total, x.mn, x.mx, x.la, m.id, ` + fmt.Sprintf(seriesValue, "m.") + `
		FROM (SELECT ` + dev + ` AS dev, ? + (received_at - ?) / ? * ? AS b, count(*) AS n, count(` + v + `) AS nv,
			sum(` + v + `) AS total, min(value) AS mn, max(CASE WHEN type = 2 THEN max ELSE value END) AS mx,
			max(received_at) AS la
		  FROM metrics INDEXED BY ` + index + ` WHERE ` + innerScope + ` AND received_at >= ? AND received_at < ?
		  GROUP BY ` + group + `) x
		CROSS JOIN metrics m ON m.id = (SELECT max(l.id) FROM metrics l INDEXED BY ` + lastIndex + ` WHERE ` +
		lastScope + ` AND l.received_at = x.la)`
	args := []any{p.origin, p.origin, p.step, p.step}
	args = append(append(append(args, innerArgs...), devArgs...), from, to)
	return stmt, append(args, lastArgs...)
}

// seriesRollups adds the fresh rollups of [h0, h1) to the fleet's buckets and returns the stale ones' ranges,
// merged into ranges, which the caller reads from the samples.
func (db *DB) seriesRollups(ctx context.Context, p *seriesPlan, h0, h1 int64,
	add func(dev, b int64, v *partial)) ([][2]int64, error) {
	if (h1-h0)/rollupMS <= rollupsInGo {
		return db.seriesRollupsGo(ctx, p, h0, h1, add)
	}
	res, err := db.rq.QueryContext(ctx, rollupQuery, p.key, rollupMS, p.origin, p.step, h0, h1)
	if err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read rollups: %w", p.q.Key, err)
	}
	defer res.Close()
	for res.Next() {
		var b int64
		var v partial
		// No last id: rollups cover whole minutes, the samples read beside them other times, so no tie to break.
		if err := res.Scan(&b, &v.N, &v.NV, &v.Total, &v.Min, &v.Max, &v.LastAt, &v.Last); err != nil {
			return nil, fmt.Errorf("sqlite: series %q: scan rollups: %w", p.q.Key, err)
		}
		add(0, b, &v)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read rollups: %w", p.q.Key, err)
	}
	res, err = db.rq.QueryContext(ctx, dirtyQuery, p.key, h0, h1)
	if err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read stale rollups: %w", p.q.Key, err)
	}
	defer res.Close()
	var dirty [][2]int64
	for res.Next() {
		var h int64
		if err := res.Scan(&h); err != nil {
			return nil, fmt.Errorf("sqlite: series %q: scan stale rollups: %w", p.q.Key, err)
		}
		dirty = addMinute(dirty, h)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read stale rollups: %w", p.q.Key, err)
	}
	return dirty, nil
}

// addMinute adds the rollup minute starting at h to ranges, read in ascending order: it extends the last range when
// the minute follows it.
func addMinute(ranges [][2]int64, h int64) [][2]int64 {
	if n := len(ranges); n > 0 && ranges[n-1][1] == h {
		ranges[n-1][1] = h + rollupMS
		return ranges
	}
	return append(ranges, [2]int64{h, h + rollupMS})
}

// rollupsInGo is the most rollups (minutes) that seriesRollupsGo reads one by one: up to a few days, handing
// them to Go costs less than the SQL sum's per-bucket lookup of the last value; a month is summed in SQL.
var rollupsInGo = int64(3 * 24 * 60) // a variable for TestFleetRollupReadsAgree

// seriesRollupsGo is seriesRollups for short ranges: one pass over the rollups, fresh and stale alike, summed in
// Go.
func (db *DB) seriesRollupsGo(ctx context.Context, p *seriesPlan, h0, h1 int64,
	add func(dev, b int64, v *partial)) ([][2]int64, error) {
	res, err := db.rq.QueryContext(ctx, `SELECT bucket, n, nv, total, mn, mx, last_at, last_id, last_value, dirty
		FROM metric_rollups WHERE key_id = ? AND bucket >= ? AND bucket < ?`, p.key, h0, h1)
	if err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read rollups: %w", p.q.Key, err)
	}
	defer res.Close()
	var dirty [][2]int64
	for res.Next() {
		var h, stale int64
		var v partial
		if err := res.Scan(&h, &v.N, &v.NV, &v.Total, &v.Min, &v.Max, &v.LastAt, &v.LastID, &v.Last, &stale); err != nil {
			return nil, fmt.Errorf("sqlite: series %q: scan rollups: %w", p.q.Key, err)
		}
		if stale == 0 {
			add(0, p.bucketOf(h), &v)
		} else {
			dirty = addMinute(dirty, h)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: series %q: read rollups: %w", p.q.Key, err)
	}
	return dirty, nil
}

// refreshRollupsQuery recomputes the rollups of a key in a range from the samples, read by time (the series index
// would read every sample of the key).
var refreshRollupsQuery = func() string {
	v := fmt.Sprintf(seriesValue, "")
	return `INSERT INTO metric_rollups (key_id, bucket, n, nv, total, mn, mx, last_at, last_id, last_value)
		SELECT g.key_id, g.bucket, g.n, g.nv, g.total, g.mn, g.mx, g.last_at, l.id, ` +
		fmt.Sprintf(seriesValue, "l.") + `
		FROM (SELECT key_id, received_at - received_at % ? AS bucket, count(*) AS n, count(` + v + `) AS nv,
			sum(` + v + `) AS total, min(value) AS mn, max(CASE WHEN type = 2 THEN max ELSE value END) AS mx,
			max(received_at) AS last_at
		  FROM metrics INDEXED BY metrics_time
		  WHERE key_id = ? AND type IN (0, 1, 2) AND received_at >= ? AND received_at < ?
		  GROUP BY bucket) g
		JOIN metrics l ON l.id = (SELECT max(id) FROM metrics m INDEXED BY metrics_time
		  WHERE m.received_at = g.last_at AND m.key_id = g.key_id AND m.type IN (0, 1, 2))`
}()

// refreshRollups recomputes the rollups of key in ranges from the samples, under the writer, so it
// sees every committed sample and no write runs beside it.
func (db *DB) refreshRollups(ctx context.Context, key int64, ranges [][2]int64) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.stmts == nil || db.w == nil {
		return nil // closed, or opened read-only
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: refresh rollups: %w", err)
	}
	defer tx.Rollback()
	for _, r := range ranges {
		if _, err := tx.ExecContext(ctx, `DELETE FROM metric_rollups WHERE key_id = ? AND bucket >= ? AND bucket < ?`,
			key, r[0], r[1]); err != nil {
			return fmt.Errorf("sqlite: refresh rollups: %w", err)
		}
		if _, err := tx.ExecContext(ctx, refreshRollupsQuery, rollupMS, key, r[0], r[1]); err != nil {
			return fmt.Errorf("sqlite: refresh rollups: %w", err)
		}
		if err := refreshRollupBlocks(ctx, tx, key, r[0], r[1]); err != nil {
			return fmt.Errorf("sqlite: refresh rollups: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: refresh rollups: %w", err)
	}
	return nil
}

// seriesDevices returns the empty series of the answer, in the order asked, and the row ids of the devices named
// (none for the fleet). A device that does not exist is ENOTFOUND.
func (db *DB) seriesDevices(ctx context.Context, q lodestone.SeriesQuery) ([]*lodestone.Series, []int64, error) {
	newSeries := func(id string) *lodestone.Series {
		return &lodestone.Series{DeviceID: id, Key: q.Key, Step: q.Step, Buckets: []lodestone.SeriesBucket{}}
	}
	if q.Fleet {
		return []*lodestone.Series{newSeries("")}, nil, nil
	}
	out := make([]*lodestone.Series, len(q.DeviceIDs))
	rows := make([]int64, len(q.DeviceIDs))
	for i, id := range q.DeviceIDs {
		err := db.r.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, id).Scan(&rows[i])
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil, lodestone.Errorf(lodestone.ENOTFOUND, "device %q not found", id)
		} else if err != nil {
			return nil, nil, fmt.Errorf("sqlite: series: resolve device %q: %w", id, err)
		}
		out[i] = newSeries(id)
	}
	return out, rows, nil
}
