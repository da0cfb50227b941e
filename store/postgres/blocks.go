package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// Sealing (migration 00170), as on SQLite (store/sqlite/blocks.go): a compactor moves each series' points older
// than a horizon from metrics into compressed blocks in metric_blocks; every read of points reads both. Sealing
// transactions take an advisory lock, so replicas seal one at a time, and delete exactly the rows they read.
const (
	sealMaxSpan   = int64(12 * time.Hour / time.Millisecond) // a block covers at most this: found by t_max
	sealMaxBytes  = 1320
	sealMaxPoints = 1000
	sealEvery     = time.Minute
	sealLock      = 0x6c6f6465_00170 // pg_advisory_xact_lock key of sealing
)

// sealSeriesPerTx series are listed at a time; sealRowsPerTx bounds one sealing transaction (tests shorten both).
var (
	sealSeriesPerTx = 512
	sealRowsPerTx   = 5000
)

// DefaultSealAfter is the age past which the compactor seals points (Options.SealAfter).
const DefaultSealAfter = 15 * time.Minute

// partial is a bucket's aggregate: rows and sealed points of one bucket add up.
type partial = metricblock.Partial

// seriesBlocks adds the sealed samples of a normalized series query to parts.
func (db *DB) seriesBlocks(ctx context.Context, q lodestone.SeriesQuery, key int64, rows []int64,
	parts map[[2]int64]*partial) error {
	step := q.Step.Milliseconds()
	from, to := ms(q.From), ms(q.To)
	origin := from / step * step
	var a args
	conds := []string{"key_id = " + a.add(key)}
	switch {
	case !q.Fleet:
		conds = append(conds, "device_id = ANY("+a.add(rows)+")", "t_max >= "+a.add(from))
	case q.GroupID != 0 || q.Tag != "":
		if q.GroupID != 0 {
			conds = append(conds, "device_id IN (SELECT device_id FROM device_group_members WHERE group_id = "+
				a.add(q.GroupID)+")")
		}
		if q.Tag != "" {
			conds = append(conds, "device_id IN (SELECT device_id FROM device_tags WHERE tag = "+a.add(q.Tag)+")")
		}
		conds = append(conds, "t_max >= "+a.add(from))
	default:
		conds = append(conds, "t_max >= "+a.add(from), "t_max < "+a.add(to+sealMaxSpan))
	}
	conds = append(conds, "t_min < "+a.add(to))
	res, err := db.pool.Query(ctx, `SELECT device_id, data FROM metric_blocks`+where(conds), a...)
	if err != nil {
		return fmt.Errorf("postgres: series %q: read blocks: %w", q.Key, err)
	}
	defer res.Close()
	for res.Next() {
		var dev int64
		var data []byte
		if err := res.Scan(&dev, &data); err != nil {
			return fmt.Errorf("postgres: series %q: read blocks: %w", q.Key, err)
		}
		pts, err := metricblock.DecodeBefore(data, to)
		if err != nil {
			return fmt.Errorf("postgres: series %q: metric block of device %d: %w", q.Key, dev, err)
		}
		if q.Fleet {
			dev = 0
		}
		for i := range pts {
			pt := &pts[i]
			if pt.At < from || pt.At >= to || pt.Type > 2 {
				continue
			}
			k := [2]int64{dev, origin + (pt.At-origin)/step*step}
			v := parts[k]
			if v == nil {
				v = &partial{}
				parts[k] = v
			}
			v.AddPoint(pt)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("postgres: series %q: read blocks: %w", q.Key, err)
	}
	return nil
}

// findSealed merges the sealed points that f selects into rows (the newest limit+offset rows, in FindMetrics'
// order) and returns the page (metricblock.Page). Blocks are read newest first, only while they can still reach
// the page.
func (db *DB) findSealed(ctx context.Context, f lodestone.MetricFilter, rows []*lodestone.Metric, limit,
	offset int) ([]*lodestone.Metric, error) {
	page := metricblock.NewPage(rows, limit, offset, f.Since, f.Until)
	var a args
	var conds []string
	if f.DeviceID != "" {
		var dev int64
		err := db.pool.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1`, f.DeviceID).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			return []*lodestone.Metric{}, nil
		} else if err != nil {
			return nil, fmt.Errorf("postgres: resolve device %q: %w", f.DeviceID, err)
		}
		conds = append(conds, "device_id = "+a.add(dev))
	}
	if f.Key != "" {
		conds = append(conds, "key_id = (SELECT id FROM metric_keys WHERE name = "+a.add(f.Key)+")")
	}
	conds = append(conds, "t_max >= "+a.add(page.MinTMax()))
	if page.Until() != math.MaxInt64 {
		conds = append(conds, "t_min < "+a.add(page.Until()))
	}
	res, err := db.pool.Query(ctx, `SELECT device_id, key_id, t_max, data FROM metric_blocks`+where(conds)+
		` ORDER BY t_max DESC`, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read metric blocks: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var dev, key, tMax int64
		var data []byte
		if err := res.Scan(&dev, &key, &tMax, &data); err != nil {
			return nil, fmt.Errorf("postgres: read metric blocks: %w", err)
		}
		if !page.Reaches(tMax) {
			break // this block and every later one are older than the whole page
		}
		if err := page.Add(dev, key, data); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read metric blocks: %w", err)
	}
	res.Close()
	out, devs, keys := page.Metrics()
	if len(devs) == 0 {
		return out, nil
	}
	devName, keyName := map[int64]string{}, map[int64]string{}
	for _, l := range []struct {
		q   string
		ids []int64
		m   map[int64]string
	}{{`SELECT id, device_id FROM devices WHERE id = ANY($1)`, devs, devName},
		{`SELECT id, name FROM metric_keys WHERE id = ANY($1)`, keys, keyName}} {
		r, err := db.pool.Query(ctx, l.q, l.ids)
		if err != nil {
			return nil, fmt.Errorf("postgres: names of sealed metrics: %w", err)
		}
		var id int64
		var name string
		if _, err := pgx.ForEachRow(r, []any{&id, &name}, func() error { l.m[id] = name; return nil }); err != nil {
			return nil, fmt.Errorf("postgres: names of sealed metrics: %w", err)
		}
	}
	page.Name(out, devName, keyName)
	return out, nil
}

// sealer runs SealMetrics every sealEvery, on whole windows of after, until stop closes.
func (db *DB) sealer(after time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(sealEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if _, err := db.SealMetrics(ctx, time.Now().Add(-after).Truncate(after)); err != nil && ctx.Err() == nil {
				slog.Warn("postgres: seal metric points into blocks", "err", err)
			}
			cancel()
		}
	}
}

// SealMetrics seals every metric point received before cutoff into blocks and returns how many points it sealed.
// It lists the series to seal a few hundred at a time and seals them in transactions of at most sealRowsPerTx
// points.
func (db *DB) SealMetrics(ctx context.Context, cutoff time.Time) (int, error) {
	cut := ms(cutoff)
	var some bool
	if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM metrics WHERE received_at < $1)`, cut).
		Scan(&some); err != nil || !some {
		return 0, err
	}
	var after [2]int64
	total := 0
	for {
		rows, err := db.pool.Query(ctx, `SELECT DISTINCT key_id, device_id FROM metrics
			WHERE (key_id, device_id) > ($1, $2) AND received_at < $3 ORDER BY key_id, device_id LIMIT $4`,
			after[0], after[1], cut, sealSeriesPerTx)
		if err != nil {
			return total, fmt.Errorf("postgres: seal: list series: %w", err)
		}
		var series [][2]int64
		var s [2]int64
		if _, err := pgx.ForEachRow(rows, []any{&s[0], &s[1]}, func() error { series = append(series, s); return nil }); err != nil {
			return total, fmt.Errorf("postgres: seal: list series: %w", err)
		}
		if len(series) == 0 {
			return total, nil
		}
		for todo := series; len(todo) > 0; {
			n, done, err := db.sealStep(ctx, cut, todo)
			total += n
			if err != nil {
				return total, err
			}
			todo = todo[done:]
		}
		if len(series) < sealSeriesPerTx {
			return total, nil
		}
		after = series[len(series)-1]
	}
}

// sealStep seals series from the front of the list in one transaction, until sealRowsPerTx points, under an
// advisory lock (replicas seal one at a time), and returns the points sealed and the series done.
func (db *DB) sealStep(ctx context.Context, cut int64, series [][2]int64) (int, int, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: seal: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(sealLock)); err != nil {
		return 0, 0, fmt.Errorf("postgres: seal: lock: %w", err)
	}
	n, done := 0, 0
	for _, s := range series {
		m, err := sealSeries(ctx, tx, s[0], s[1], cut)
		if err != nil {
			return 0, 0, fmt.Errorf("postgres: seal key %d of device %d: %w", s[0], s[1], err)
		}
		n, done = n+m, done+1
		if n >= sealRowsPerTx {
			break
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("postgres: seal: commit: %w", err)
	}
	return n, done, nil
}

// sealSeries moves one series' rows before cut into blocks, appending to its last block when that has room. It
// deletes exactly the rows it read: a row committed meanwhile (an import) stays a row.
func sealSeries(ctx context.Context, tx pgx.Tx, key, dev, cut int64) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, received_at, ticks, type, value, max, raw FROM metrics
		WHERE key_id = $1 AND device_id = $2 AND received_at < $3 ORDER BY received_at, id`, key, dev, cut)
	if err != nil {
		return 0, err
	}
	var pts []metricblock.Point
	var ids []int64
	for rows.Next() {
		var p metricblock.Point
		var value, maxV *float64
		var typ int16
		if err := rows.Scan(&p.ID, &p.At, &p.Ticks, &typ, &value, &maxV, &p.Raw); err != nil {
			rows.Close()
			return 0, err
		}
		p.Type, p.Value, p.Max = uint8(typ), nullToNaN(value), nullToNaN(maxV)
		pts, ids = append(pts, p), append(ids, p.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(pts) == 0 {
		return 0, nil
	}
	var last struct {
		id, tMin, tMax int64
		data           []byte
	}
	err = tx.QueryRow(ctx, `SELECT id, t_min, t_max, data FROM metric_blocks WHERE key_id = $1 AND device_id = $2
		ORDER BY t_max DESC LIMIT 1`, key, dev).Scan(&last.id, &last.tMin, &last.tMax, &last.data)
	all := pts
	if err == nil && last.tMax < pts[0].At && len(last.data) < sealMaxBytes-64 && pts[0].At-last.tMin < sealMaxSpan {
		old, err := metricblock.Decode(last.data)
		if err != nil {
			return 0, fmt.Errorf("block %d: %w", last.id, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM metric_blocks WHERE id = $1`, last.id); err != nil {
			return 0, err
		}
		all = append(old, pts...)
	} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	for lo := 0; lo < len(all); {
		enc := metricblock.NewEncoder()
		hi := lo
		for hi < len(all) && hi-lo < sealMaxPoints && enc.Len()+32 <= sealMaxBytes && all[hi].At-all[lo].At < sealMaxSpan {
			if err := enc.Add(&all[hi]); err != nil {
				return 0, err
			}
			hi++
		}
		if _, err := tx.Exec(ctx, `INSERT INTO metric_blocks (device_id, key_id, t_min, t_max, n, data)
			VALUES ($1, $2, $3, $4, $5, $6)`, dev, key, all[lo].At, all[hi-1].At, hi-lo, enc.Bytes()); err != nil {
			return 0, err
		}
		lo = hi
	}
	if _, err := tx.Exec(ctx, `DELETE FROM metrics WHERE id = ANY($1)`, ids); err != nil {
		return 0, err
	}
	return len(pts), nil
}
