package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.SeriesReader = (*DB)(nil)

// seriesValue is what a sample contributes to a bucket's average and last value: a histogram its midpoint.
const seriesValue = `CASE WHEN %[1]stype = 2 THEN (%[1]svalue + %[1]smax) / 2 ELSE %[1]svalue END`

// MetricSeries implements lodestone.SeriesReader. Buckets are computed by one GROUP BY over an index-only scan of
// metrics_series_device or metrics_series_fleet; the last value of each bucket is one index lookup.
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
	err = db.pool.QueryRow(ctx, `SELECT id FROM metric_keys WHERE name = $1`, q.Key).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil // no device ever sent this key: every series is empty
	} else if err != nil {
		return nil, fmt.Errorf("postgres: series: resolve key %q: %w", q.Key, err)
	}

	stmt, a := seriesQuery(q, key, rows)
	res, err := db.pool.Query(ctx, stmt, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: series %q: %w", q.Key, err)
	}
	defer res.Close()
	// Partial buckets by device row (0 for the fleet) and bucket start: the rows' and the sealed points'.
	parts := map[[2]int64]*partial{}
	for res.Next() {
		var k [2]int64
		var v partial
		if err := res.Scan(&k[0], &k[1], &v.N, &v.NV, &v.Total, &v.Min, &v.Max, &v.LastAt, &v.LastID,
			&v.Last); err != nil {
			return nil, fmt.Errorf("postgres: series %q: scan: %w", q.Key, err)
		}
		parts[k] = &v
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("postgres: series %q: %w", q.Key, err)
	}
	if err := db.seriesBlocks(ctx, q, key, rows, parts); err != nil {
		return nil, err
	}
	byRow := make(map[int64]*lodestone.Series, len(out))
	for i, r := range rows {
		byRow[r] = out[i]
	}
	keys := make([][2]int64, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		s := out[0]
		if !q.Fleet {
			s = byRow[k[0]]
		}
		s.Buckets = append(s.Buckets, parts[k].Bucket(fromMS(k[1])))
	}
	return out, nil
}

// seriesQuery is the statement of MetricSeries for a normalized query, its key id and its devices' row ids.
func seriesQuery(q lodestone.SeriesQuery, key int64, rows []int64) (string, args) {
	step := q.Step.Milliseconds()
	from, to := ms(q.From), ms(q.To)
	origin := from / step * step // from is not negative (Normalize), so this is the floor
	var a args
	pKey, pOrigin, pStep := a.add(key), a.add(origin), a.add(step)
	// scope selects the samples of the series, in the outer query (alias "") and in the last-value lookup ("l.").
	var scopeConds []string
	if q.GroupID != 0 {
		scopeConds = append(scopeConds, "device_id IN (SELECT device_id FROM device_group_members WHERE group_id = "+
			a.add(q.GroupID)+")")
	}
	if q.Tag != "" {
		scopeConds = append(scopeConds, "device_id IN (SELECT device_id FROM device_tags WHERE tag = "+a.add(q.Tag)+")")
	}
	scope := func(p string) string {
		c := []string{p + "key_id = " + pKey, p + "type IN (0, 1, 2)"}
		for _, s := range scopeConds {
			c = append(c, p+s)
		}
		return strings.Join(c, " AND ")
	}
	lastScope, innerScope := scope("l."), scope("")
	dev, group := "0::bigint", "b"
	if !q.Fleet {
		dev, group = "device_id", "device_id, b"
		innerScope += " AND device_id = ANY(" + a.add(rows) + ")"
		lastScope += " AND l.device_id = x.dev"
	}
	v := fmt.Sprintf(seriesValue, "")
	// The last sample of a bucket is the one with the highest row id at the bucket's latest time.
	stmt := `SELECT x.dev, x.b, x.n, x.nv, x.total, x.mn, x.mx, x.la, l.id, l.v
		FROM (SELECT ` + dev + ` AS dev, ` + pOrigin + ` + (received_at - ` + pOrigin + `) / ` + pStep + ` * ` + pStep +
		` AS b, count(*) AS n, count(` + v + `) AS nv, sum(` + v + `) AS total, min(value) AS mn,
			max(CASE WHEN type = 2 THEN max ELSE value END) AS mx, max(received_at) AS la
		  FROM metrics WHERE ` + innerScope + ` AND received_at >= ` + a.add(from) + ` AND received_at < ` + a.add(to) + `
		  GROUP BY ` + group + `) x
		CROSS JOIN LATERAL (SELECT l.id, ` + fmt.Sprintf(seriesValue, "l.") + ` AS v FROM metrics l
		  WHERE ` + lastScope + ` AND l.received_at = x.la ORDER BY l.id DESC LIMIT 1) l
		ORDER BY x.dev, x.b`
	return stmt, a
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
	res, err := db.pool.Query(ctx, `SELECT device_id, id FROM devices WHERE device_id = ANY($1)`, q.DeviceIDs)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: series: resolve devices: %w", err)
	}
	found := map[string]int64{}
	var id string
	var row int64
	if _, err := pgx.ForEachRow(res, []any{&id, &row}, func() error { found[id] = row; return nil }); err != nil {
		return nil, nil, fmt.Errorf("postgres: series: resolve devices: %w", err)
	}
	out := make([]*lodestone.Series, len(q.DeviceIDs))
	rows := make([]int64, len(q.DeviceIDs))
	for i, id := range q.DeviceIDs {
		r, ok := found[id]
		if !ok {
			return nil, nil, lodestone.Errorf(lodestone.ENOTFOUND, "device %q not found", id)
		}
		out[i], rows[i] = newSeries(id), r
	}
	return out, rows, nil
}
