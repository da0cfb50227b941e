package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.SeriesReader = (*DB)(nil)

// seriesValue is what a sample contributes to a bucket's average and last value: a histogram its midpoint.
const seriesValue = `CASE WHEN %[1]stype = 2 THEN (%[1]svalue + %[1]smax) / 2 ELSE %[1]svalue END`

// MetricSeries implements lodestone.SeriesReader. Buckets are computed by one GROUP BY over the (key_id,
// device_id, received_at) or (key_id, received_at) index; the last value of each bucket is one index lookup.
func (db *DB) MetricSeries(ctx context.Context, q lodestone.SeriesQuery) ([]*lodestone.Series, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	out, rows, err := db.seriesDevices(ctx, q)
	if err != nil {
		return nil, err
	}
	var key int64
	err = db.r.QueryRowContext(ctx, `SELECT id FROM metric_keys WHERE name = ?`, q.Key).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return out, nil // no device ever sent this key: every series is empty
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: series: resolve key %q: %w", q.Key, err)
	}

	step := q.Step.Milliseconds()
	from, to := ms(q.From), ms(q.To)
	origin := from / step * step // from is not negative (Normalize), so this is the floor
	// scope selects the samples of the series, in the outer query (alias "") and in the last-value lookup ("l.").
	scope := func(p string) (string, []any) {
		c := []string{p + "key_id = ?", p + "type IN (0, 1, 2)"}
		a := []any{key}
		if !q.Fleet {
			return strings.Join(c, " AND "), a
		}
		if q.GroupID != 0 {
			c = append(c, p+"device_id IN (SELECT device_id FROM device_group_members WHERE group_id = ?)")
			a = append(a, q.GroupID)
		}
		if q.Tag != "" {
			c = append(c, p+"device_id IN (SELECT device_id FROM device_tags WHERE tag = ?)")
			a = append(a, q.Tag)
		}
		return strings.Join(c, " AND "), a
	}
	lastScope, lastArgs := scope("l.")
	innerScope, innerArgs := scope("")
	dev, group := "0", "b"
	var devCond string
	var devArgs []any
	if !q.Fleet {
		dev, group = "device_id", "device_id, b"
		devCond = " AND device_id IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(rows)), ", ") + ")"
		for _, r := range rows {
			devArgs = append(devArgs, r)
		}
		lastScope += " AND l.device_id = x.dev"
	}
	stmt := `SELECT x.dev, x.b, x.n, x.mn, x.mx, x.av,
		(SELECT ` + fmt.Sprintf(seriesValue, "l.") + ` FROM metrics l
		  WHERE ` + lastScope + ` AND l.received_at = x.la ORDER BY l.id DESC LIMIT 1)
		FROM (SELECT ` + dev + ` AS dev, ? + (received_at - ?) / ? * ? AS b, count(*) AS n, min(value) AS mn,
			max(CASE WHEN type = 2 THEN max ELSE value END) AS mx, avg(` + fmt.Sprintf(seriesValue, "") + `) AS av,
			max(received_at) AS la
		  FROM metrics WHERE ` + innerScope + devCond + ` AND received_at >= ? AND received_at < ?
		  GROUP BY ` + group + `) x
		ORDER BY x.dev, x.b`
	args := append(lastArgs, origin, origin, step, step)
	args = append(append(append(args, innerArgs...), devArgs...), from, to)
	res, err := db.r.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: series %q: %w", q.Key, err)
	}
	defer res.Close()
	byRow := make(map[int64]*lodestone.Series, len(out))
	for i, r := range rows {
		byRow[r] = out[i]
	}
	for res.Next() {
		var d, start int64
		var b lodestone.SeriesBucket
		var mn, mx, av, last sql.NullFloat64
		if err := res.Scan(&d, &start, &b.Count, &mn, &mx, &av, &last); err != nil {
			return nil, fmt.Errorf("sqlite: series %q: scan: %w", q.Key, err)
		}
		b.Start, b.Min, b.Max, b.Avg, b.Last = fromMS(start), nullToNaN(mn), nullToNaN(mx), nullToNaN(av),
			nullToNaN(last)
		s := out[0]
		if !q.Fleet {
			s = byRow[d]
		}
		s.Buckets = append(s.Buckets, b)
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: series %q: %w", q.Key, err)
	}
	return out, nil
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
