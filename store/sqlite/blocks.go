package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// Sealing (migration 00170): a background compactor moves each series' points older than a horizon from the
// metrics table into compressed blocks in metric_blocks, a few bytes a point against about a hundred for a row and
// its index entries. Every read of points reads rows and blocks alike. A block keeps each point's row id, so
// answers are the same before and after sealing.
const (
	// sealMaxSpan bounds the time a block covers, so a time range finds its blocks by t_max alone.
	sealMaxSpan = int64(12 * time.Hour / time.Millisecond)
	// sealMaxBytes ends a block before it passes this size: three blocks share a 4 KiB page without overflow.
	sealMaxBytes = 1320
	// sealMaxPoints bounds a block of a steady series (a constant costs a bit or two a point).
	sealMaxPoints = 1000
	// sealingKey is set in settings within a sealing transaction only; the rollup triggers skip sealing's deletes.
	sealingKey = "metrics.sealing"
)

// sealEvery is how often the compactor runs. sealDevicesPerList devices are listed at a time; sealRowsPerTx bounds
// one sealing transaction, so ingest waits for the writer at most about as long as a group commit of that many
// rows. Tests shorten all three.
var (
	sealEvery          = time.Minute
	sealDevicesPerList = 512
	sealRowsPerTx      = 5000
)

// DefaultSealAfter is the age past which the compactor seals points (Options.SealAfter).
const DefaultSealAfter = 15 * time.Minute

// sealer runs SealMetrics every sealEvery until the database closes.
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
			// Whole windows of `after`: a series then gains that many minutes of points per pass, not one, and a
			// pass between window ends finds nothing to do in one index probe. Rows stay after to 2×after.
			cut := db.now().Add(-after).Truncate(after)
			if _, err := db.SealMetrics(ctx, cut); err != nil && ctx.Err() == nil {
				db.log.Warn("sqlite: seal metric points into blocks", "err", err)
			}
			cancel()
		}
	}
}

// SealMetrics seals every metric point received before cutoff into blocks and returns how many points it sealed.
// It lists the devices with points to seal a few hundred at a time and seals them in transactions of about
// sealRowsPerTx points, so ingest waits for the writer at most about as long as a group commit of that many rows.
//
// The newest row of the table is never sealed: a rowid table gives a new row the largest id plus one, so emptying
// the table's end would hand out again ids that sealed points keep, and ids must stay unique and increasing.
func (db *DB) SealMetrics(ctx context.Context, cutoff time.Time) (int, error) {
	cut := ms(cutoff)
	var some int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM metrics INDEXED BY metrics_time
		WHERE received_at < ? LIMIT 1)`, cut).Scan(&some)
	if err != nil || some == 0 {
		return 0, err
	}
	var after int64
	total := 0
	for {
		devices, err := db.sealList(ctx, cut, after)
		if err != nil || len(devices) == 0 {
			return total, err
		}
		for todo := devices; len(todo) > 0; {
			n, done, err := db.sealStep(ctx, cut, todo)
			total += n
			if err != nil {
				return total, err
			}
			todo = todo[done:]
		}
		if len(devices) < sealDevicesPerList {
			return total, nil
		}
		after = devices[len(devices)-1]
	}
}

// sealList lists up to sealDevicesPerList devices after the one given that have points before cut. It walks
// metrics_device_time once across all calls: the rows have no index by series, which would cost every insert an
// entry in key order (BenchmarkMetricWriteCost).
func (db *DB) sealList(ctx context.Context, cut, after int64) ([]int64, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT device_id FROM metrics INDEXED BY metrics_device_time
		WHERE device_id > ? AND received_at < ? ORDER BY device_id LIMIT ?`, after, cut, sealDevicesPerList)
	if err != nil {
		return nil, fmt.Errorf("sqlite: seal: list devices: %w", err)
	}
	defer rows.Close()
	var devices []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("sqlite: seal: list devices: %w", err)
		}
		devices = append(devices, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: seal: list devices: %w", err)
	}
	return devices, nil
}

// sealStep seals devices from the front of the list in one transaction, until sealRowsPerTx points, and returns
// the points sealed and the devices done.
func (db *DB) sealStep(ctx context.Context, cut int64, devices []int64) (int, int, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.stmts == nil || db.w == nil {
		return 0, len(devices), nil // closed, or read-only
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: seal: %w", err)
	}
	defer tx.Rollback()
	var top int64 // the newest row stays (SealMetrics)
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM metrics`).Scan(&top); err != nil {
		return 0, 0, fmt.Errorf("sqlite: seal: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, '1')`, sealingKey); err != nil {
		return 0, 0, fmt.Errorf("sqlite: seal: %w", err)
	}
	n, done := 0, 0
	for _, dev := range devices {
		m, err := sealDevice(ctx, tx, dev, cut, top)
		if err != nil {
			return 0, 0, fmt.Errorf("sqlite: seal device %d: %w", dev, err)
		}
		n, done = n+m, done+1
		if n >= sealRowsPerTx {
			break
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, sealingKey); err != nil {
		return 0, 0, fmt.Errorf("sqlite: seal: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("sqlite: seal: commit: %w", err)
	}
	return n, done, nil
}

// sealDevice moves one device's rows before cut (and below id top) into blocks, series by series.
func sealDevice(ctx context.Context, tx *sql.Tx, dev, cut, top int64) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT key_id, id, received_at, ticks, type, value, max, raw FROM metrics
		INDEXED BY metrics_device_time WHERE device_id = ? AND received_at < ? AND id < ?
		ORDER BY key_id, received_at, id`, dev, cut, top)
	if err != nil {
		return 0, err
	}
	var keys []int64
	var pts []metricblock.Point
	var ends []int // pts[ends[i-1]:ends[i]] are keys[i]'s points
	for rows.Next() {
		var key int64
		var p metricblock.Point
		var value, maxV sql.NullFloat64
		if err := rows.Scan(&key, &p.ID, &p.At, &p.Ticks, &p.Type, &value, &maxV, &p.Raw); err != nil {
			rows.Close()
			return 0, err
		}
		p.Value, p.Max = nullToNaN(value), nullToNaN(maxV)
		if len(keys) == 0 || keys[len(keys)-1] != key {
			if len(keys) > 0 {
				ends = append(ends, len(pts))
			}
			keys = append(keys, key)
		}
		pts = append(pts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(pts) == 0 {
		return 0, nil
	}
	ends = append(ends, len(pts))
	lo := 0
	for i, key := range keys {
		if err := sealSeries(ctx, tx, key, dev, pts[lo:ends[i]]); err != nil {
			return 0, fmt.Errorf("key %d: %w", key, err)
		}
		lo = ends[i]
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM metrics INDEXED BY metrics_device_time
		WHERE device_id = ? AND received_at < ? AND id < ?`, dev, cut, top); err != nil {
		return 0, err
	}
	return len(pts), nil
}

// sealSeries writes one series' points, in time order, as blocks, appending to its last block when that has room.
func sealSeries(ctx context.Context, tx *sql.Tx, key, dev int64, pts []metricblock.Point) error {
	// The series' newest block takes the points when they all come after it and it has room.
	var last struct {
		id, tMin, tMax int64
		data           []byte
	}
	err := tx.QueryRowContext(ctx, `SELECT id, t_min, t_max, data FROM metric_blocks INDEXED BY metric_blocks_series
		WHERE key_id = ? AND device_id = ? ORDER BY t_max DESC LIMIT 1`, key, dev).
		Scan(&last.id, &last.tMin, &last.tMax, &last.data)
	if err == nil && last.tMax < pts[0].At && len(last.data) < sealMaxBytes-64 && pts[0].At-last.tMin < sealMaxSpan {
		old, err := metricblock.Decode(last.data)
		if err != nil {
			return fmt.Errorf("block %d: %w", last.id, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM metric_blocks WHERE id = ?`, last.id); err != nil {
			return err
		}
		pts = append(old, pts...)
	} else if err != nil && err != sql.ErrNoRows {
		return err
	}
	for lo := 0; lo < len(pts); {
		enc := metricblock.NewEncoder()
		hi := lo
		for hi < len(pts) && hi-lo < sealMaxPoints && enc.Len()+32 <= sealMaxBytes &&
			pts[hi].At-pts[lo].At < sealMaxSpan {
			if err := enc.Add(&pts[hi]); err != nil {
				return err
			}
			hi++
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO metric_blocks (device_id, key_id, t_min, t_max, n, data)
			VALUES (?, ?, ?, ?, ?, ?)`, dev, key, pts[lo].At, pts[hi-1].At, hi-lo, enc.Bytes()); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// blockPoint is a decoded point with its series.
type blockPoint struct {
	dev, key int64
	metricblock.Point
}

// readBlocks decodes the blocks a query selects (its first columns device_id, key_id, data), up to time to, and
// calls fn with the points.
func readBlocks(ctx context.Context, q queryer, stmt string, args []any, to int64,
	fn func(dev, key int64, pts []metricblock.Point) error) error {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("read metric blocks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev, key int64
		var data []byte
		if err := rows.Scan(&dev, &key, &data); err != nil {
			return fmt.Errorf("read metric blocks: %w", err)
		}
		pts, err := metricblock.DecodeBefore(data, to)
		if err != nil {
			return fmt.Errorf("metric block of key %d, device %d: %w", key, dev, err)
		}
		if err := fn(dev, key, pts); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read metric blocks: %w", err)
	}
	return nil
}

// seriesBlocks aggregates the sealed samples of [from, to) into partial buckets, as seriesRaw does the rows.
func seriesBlocks(ctx context.Context, q queryer, p *seriesPlan, from, to int64,
	add func(dev, b int64, v *partial)) error {
	stmt, args := blocksQuery(p.key, p.q.GroupID, p.q.Tag, p.q.Fleet, p.rows, from, to)
	parts := map[[2]int64]*partial{}
	err := readBlocks(ctx, q, stmt, args, to, func(dev, _ int64, pts []metricblock.Point) error {
		if p.q.Fleet {
			dev = 0
		}
		for i := range pts {
			pt := &pts[i]
			if pt.At < from || pt.At >= to || pt.Type > 2 {
				continue
			}
			k := [2]int64{dev, p.bucketOf(pt.At)}
			v := parts[k]
			if v == nil {
				v = &partial{}
				parts[k] = v
			}
			v.AddPoint(pt)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: series %q: %w", p.q.Key, err)
	}
	for k, v := range parts {
		add(k[0], k[1], v)
	}
	return nil
}

// blocksQuery selects the blocks of a key that may hold samples of [from, to): of the devices in rows, of a
// group's or tag's members, or (neither) of the whole fleet, found by time.
func blocksQuery(key, group int64, tag string, fleet bool, rows []int64, from, to int64) (string, []any) {
	stmt := `SELECT device_id, key_id, data FROM metric_blocks INDEXED BY metric_blocks_series WHERE key_id = ?`
	args := []any{key}
	switch {
	case !fleet:
		stmt += ` AND device_id IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(rows)), ", ") + `)`
		for _, r := range rows {
			args = append(args, r)
		}
	case group != 0 || tag != "":
		if group != 0 {
			stmt += ` AND device_id IN (SELECT device_id FROM device_group_members WHERE group_id = ?)`
			args = append(args, group)
		}
		if tag != "" {
			stmt += ` AND device_id IN (SELECT device_id FROM device_tags WHERE tag = ?)`
			args = append(args, tag)
		}
	default:
		return `SELECT device_id, key_id, data FROM metric_blocks INDEXED BY metric_blocks_key_time
			WHERE key_id = ? AND t_max >= ? AND t_max < ? AND t_min < ?`, []any{key, from, to + sealMaxSpan, to}
	}
	return stmt + ` AND t_max >= ? AND t_min < ?`, append(args, from, to)
}

// rollupUpsert merges a minute's samples, summed in Go (the writer's new rows, sealed blocks), into its rollup.
const rollupUpsert = `INSERT INTO metric_rollups (key_id, bucket, n, nv, total, mn, mx, last_at, last_id, last_value)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (key_id, bucket) DO UPDATE SET
		n = n + excluded.n,
		nv = nv + excluded.nv,
		total = coalesce(total + excluded.total, total, excluded.total),
		mn = min(coalesce(mn, excluded.mn), coalesce(excluded.mn, mn)),
		mx = max(coalesce(mx, excluded.mx), coalesce(excluded.mx, mx)),
		last_value = CASE WHEN (excluded.last_at, excluded.last_id) > (last_at, last_id) THEN excluded.last_value
			ELSE last_value END,
		last_id = CASE WHEN (excluded.last_at, excluded.last_id) > (last_at, last_id) THEN excluded.last_id
			ELSE last_id END,
		last_at = max(last_at, excluded.last_at)`

// refreshRollupBlocks adds the sealed samples of key in [from, to) (whole minutes) to the rollups, after
// refreshRollups has rebuilt them from the rows.
func refreshRollupBlocks(ctx context.Context, tx *sql.Tx, key, from, to int64) error {
	p := &seriesPlan{q: lodestone.SeriesQuery{Fleet: true}, key: key, step: rollupMS, origin: from - from%rollupMS}
	parts := map[int64]*partial{}
	err := seriesBlocks(ctx, tx, p, from, to, func(_, b int64, v *partial) { parts[b] = v })
	if err != nil {
		return err
	}
	for b, v := range parts {
		if _, err := tx.ExecContext(ctx, rollupUpsert, key, b, v.N, v.NV, v.Total, v.Min, v.Max, v.LastAt, v.LastID,
			v.Last); err != nil {
			return fmt.Errorf("merge sealed samples into rollup: %w", err)
		}
	}
	return nil
}

// findSealed merges the sealed points that f selects into rows (the newest limit+offset rows, in FindMetrics'
// order) and returns the page (metricblock.Page). Blocks are read newest first and only while they can still reach
// the page: a block whose last point is older than the page's last entry holds none of it.
func (db *DB) findSealed(ctx context.Context, f lodestone.MetricFilter, rows []*lodestone.Metric, limit,
	offset int) ([]*lodestone.Metric, error) {
	page := metricblock.NewPage(rows, limit, offset, f.Since, f.Until)
	var where []string
	var args []any
	if f.DeviceID != "" {
		var dev int64
		err := db.r.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, f.DeviceID).Scan(&dev)
		if errors.Is(err, sql.ErrNoRows) {
			return []*lodestone.Metric{}, nil
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: resolve device %q: %w", f.DeviceID, err)
		}
		where, args = append(where, "device_id = ?"), append(args, dev)
	}
	if f.Key != "" {
		where, args = append(where, "key_id = (SELECT id FROM metric_keys WHERE name = ?)"), append(args, f.Key)
	}
	// One lower bound on t_max, so the index range starts there.
	where, args = append(where, "t_max >= ?"), append(args, page.MinTMax())
	if page.Until() != math.MaxInt64 {
		where, args = append(where, "t_min < ?"), append(args, page.Until())
	}
	// Without a device, blocks are read by time, newest first (by key, the planner would sort all of its blocks).
	index := ""
	if f.DeviceID == "" {
		index = " INDEXED BY metric_blocks_time"
	}
	stmt := `SELECT device_id, key_id, t_max, data FROM metric_blocks` + index + ` WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY t_max DESC`
	// A few shapes (device, key, end or not): cached, as preparing it was a tenth of a newest-100 page.
	res, err := db.rq.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read metric blocks: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var dev, key, tMax int64
		var data []byte
		if err := res.Scan(&dev, &key, &tMax, &data); err != nil {
			return nil, fmt.Errorf("sqlite: read metric blocks: %w", err)
		}
		if !page.Reaches(tMax) {
			break // this block and every later one are older than the whole page
		}
		if err := page.Add(dev, key, data); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read metric blocks: %w", err)
	}
	// Names are looked up after the blocks' query is done with its connection: a request holding two of the read
	// pool's connections at once could wait forever on a busy pool.
	res.Close()
	out, devs, keys := page.Metrics()
	devName, keyName := map[int64]string{}, map[int64]string{}
	for i, dev := range devs {
		if _, ok := devName[dev]; !ok {
			var id string
			if err := db.r.QueryRowContext(ctx, `SELECT device_id FROM devices WHERE id = ?`, dev).Scan(&id); err != nil {
				return nil, fmt.Errorf("sqlite: device of a metric block: %w", err)
			}
			devName[dev] = id
		}
		if _, ok := keyName[keys[i]]; !ok {
			k := keys[i]
			var name string
			if err := db.r.QueryRowContext(ctx, `SELECT name FROM metric_keys WHERE id = ?`, k).Scan(&name); err != nil {
				return nil, fmt.Errorf("sqlite: key of a metric block: %w", err)
			}
			keyName[k] = name
		}
	}
	page.Name(out, devName, keyName)
	return out, nil
}
