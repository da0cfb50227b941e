package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// query runs a filtered, paged, newest-first telemetry query over table t (aliased x, joined to devices d). When
// a device is named, its row id is resolved first so the (device_id, received_at) index serves the query; a device
// that does not exist gives no rows.
func (db *DB) query(ctx context.Context, cols, t, joins string, f lodestone.TelemetryFilter,
	extra func(a *args) string) (pgx.Rows, error) {
	return db.queryPage(ctx, cols, t, joins, f, lodestone.ClampLimit(f.Limit), max(f.Offset, 0), extra)
}

// queryPage is query with the page's limit and offset given.
func (db *DB) queryPage(ctx context.Context, cols, t, joins string, f lodestone.TelemetryFilter, limit, offset int,
	extra func(a *args) string) (pgx.Rows, error) {
	var a args
	var conds []string
	if f.DeviceID != "" {
		var dev int64
		err := db.pool.QueryRow(ctx, `SELECT id FROM devices WHERE device_id = $1`, f.DeviceID).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			dev = -1 // no device has this row id, so the query below finds nothing
		} else if err != nil {
			return nil, fmt.Errorf("postgres: resolve device %q: %w", f.DeviceID, err)
		}
		conds = append(conds, "x.device_id = "+a.add(dev))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "x.received_at >= "+a.add(ms(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "x.received_at < "+a.add(ms(f.Until)))
	}
	if extra != nil {
		conds = append(conds, extra(&a))
	}
	q := `SELECT ` + cols + ` FROM ` + t + ` x JOIN devices d ON d.id = x.device_id` + joins + where(conds) +
		` ORDER BY x.received_at DESC, x.id DESC LIMIT ` + a.add(limit) + ` OFFSET ` + a.add(offset)
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: query %s: %w", t, err)
	}
	return rows, nil
}

// FindFaults implements lodestone.TelemetryService.
func (db *DB) FindFaults(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Fault, error) {
	rows, err := db.query(ctx, faultColumns, "faults", "", f, nil)
	if err != nil {
		return nil, err
	}
	return collect(rows, "fault", func(rows pgx.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
}

// FindMetrics implements lodestone.TelemetryService: the newest rows of the page's reach, merged with the sealed
// points that belong among them (findSealed).
func (db *DB) FindMetrics(ctx context.Context, f lodestone.MetricFilter) ([]*lodestone.Metric, error) {
	limit, offset := lodestone.ClampLimit(f.Limit), max(f.Offset, 0)
	rows, err := db.findMetricRows(ctx, f, limit+offset)
	if err != nil {
		return nil, err
	}
	return db.findSealed(ctx, f, rows, limit, offset)
}

// findMetricRows reads the newest n metric rows that f selects.
func (db *DB) findMetricRows(ctx context.Context, f lodestone.MetricFilter, n int) ([]*lodestone.Metric, error) {
	cols := `x.id, x.device_id, d.device_id, k.name, x.type, x.value, x.max, x.raw, x.ticks, x.received_at`
	var extra func(*args) string
	if f.Key != "" {
		extra = func(a *args) string {
			return "x.key_id = (SELECT id FROM metric_keys WHERE name = " + a.add(f.Key) + ")"
		}
	}
	rows, err := db.queryPage(ctx, cols, "metrics", " JOIN metric_keys k ON k.id = x.key_id", f.TelemetryFilter,
		n, 0, extra)
	if err != nil {
		return nil, err
	}
	return collect(rows, "metric", func(rows pgx.Rows) (*lodestone.Metric, error) {
		var v lodestone.Metric
		var value, maxV *float64
		var ticks, at int64
		var typ int16
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &v.Key, &typ, &value, &maxV, &v.Raw, &ticks,
			&at); err != nil {
			return nil, err
		}
		v.Type = lodestone.MetricType(typ)
		v.Value = nullToNaN(value)
		if v.Type == lodestone.MetricHistogram {
			v.Max = nullToNaN(maxV)
		}
		v.Ticks, v.ReceivedAt = uint64(ticks), fromMS(at)
		return &v, nil
	})
}

func nullToNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// FindReboots implements lodestone.TelemetryService.
func (db *DB) FindReboots(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Reboot, error) {
	rows, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.reason, x.extra, x.boot_sequence,
		x.uptime_before_reboot, x.received_at`, "reboots", "", f, nil)
	if err != nil {
		return nil, err
	}
	return collect(rows, "reboot", func(rows pgx.Rows) (*lodestone.Reboot, error) {
		var v lodestone.Reboot
		var reason, extra int16
		var seq, up, at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &reason, &extra, &seq, &up, &at); err != nil {
			return nil, err
		}
		v.Reason, v.Extra, v.BootSequence, v.UptimeBeforeReboot = uint8(reason), uint8(extra), uint32(seq), uint32(up)
		v.ReceivedAt = fromMS(at)
		return &v, nil
	})
}

// FindHeartbeats implements lodestone.TelemetryService.
func (db *DB) FindHeartbeats(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Heartbeat, error) {
	rows, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.uptime_ticks, x.free_stack, x.metrics_count,
		x.frames_lost, x.device_key, x.received_at`, "heartbeats", "", f, nil)
	if err != nil {
		return nil, err
	}
	return collect(rows, "heartbeat", func(rows pgx.Rows) (*lodestone.Heartbeat, error) {
		var v lodestone.Heartbeat
		var ticks, free, count, lost, key, at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &ticks, &free, &count, &lost, &key, &at); err != nil {
			return nil, err
		}
		v.UptimeTicks, v.FreeStack, v.MetricsCount = uint64(ticks), uint32(free), uint32(count)
		v.FramesLost, v.DeviceKey, v.ReceivedAt = uint32(lost), uint32(key), fromMS(at)
		return &v, nil
	})
}

// FindTraces implements lodestone.TelemetryService.
func (db *DB) FindTraces(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Trace, error) {
	rows, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.data, x.received_at`, "traces", "", f, nil)
	if err != nil {
		return nil, err
	}
	return collect(rows, "trace", func(rows pgx.Rows) (*lodestone.Trace, error) {
		var v lodestone.Trace
		var at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &v.Data, &at); err != nil {
			return nil, err
		}
		v.ReceivedAt = fromMS(at)
		return &v, nil
	})
}

// FindOtaRequests implements lodestone.TelemetryService.
func (db *DB) FindOtaRequests(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.OtaRequest, error) {
	rows, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.build_id, x.max_chunk_size, x.ota_capable,
		x.received_at`, "ota_requests", "", f, nil)
	if err != nil {
		return nil, err
	}
	return collect(rows, "OTA request", func(rows pgx.Rows) (*lodestone.OtaRequest, error) {
		var v lodestone.OtaRequest
		var build, at int64
		var chunk int32
		var capable int16
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &build, &chunk, &capable, &at); err != nil {
			return nil, err
		}
		v.BuildID, v.MaxChunkSize, v.OtaCapable = uint64(build), uint16(chunk), uint8(capable)
		v.ReceivedAt = fromMS(at)
		return &v, nil
	})
}
