package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// query builds a filtered, paged, newest-first telemetry query over table t (aliased x, joined to devices d).
// When a device is named, its row id is resolved first so the (device_id, received_at) index serves the query.
// It returns ok=false when the named device does not exist.
func (db *DB) query(ctx context.Context, cols, t, joins string, f lodestone.TelemetryFilter, extra string,
	extraArgs ...any) (*sql.Rows, bool, error) {
	return db.queryPage(ctx, cols, t, joins, f, lodestone.ClampLimit(f.Limit), max(f.Offset, 0), extra, extraArgs...)
}

// queryPage is query with the page's limit and offset given.
func (db *DB) queryPage(ctx context.Context, cols, t, joins string, f lodestone.TelemetryFilter, limit, offset int,
	extra string, extraArgs ...any) (*sql.Rows, bool, error) {
	var where []string
	var args []any
	if f.DeviceID != "" {
		var dev int64
		err := db.r.QueryRowContext(ctx, `SELECT id FROM devices WHERE device_id = ?`, f.DeviceID).Scan(&dev)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, fmt.Errorf("sqlite: resolve device %q: %w", f.DeviceID, err)
		}
		where = append(where, "x.device_id = ?")
		args = append(args, dev)
	}
	if !f.Since.IsZero() {
		where = append(where, "x.received_at >= ?")
		args = append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "x.received_at < ?")
		args = append(args, ms(f.Until))
	}
	if extra != "" {
		where = append(where, extra)
		args = append(args, extraArgs...)
	}
	q := `SELECT ` + cols + ` FROM ` + t + ` x JOIN devices d ON d.id = x.device_id` + joins
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY x.received_at DESC, x.id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, offset)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: query %s: %w", t, err)
	}
	return rows, true, nil
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, ok bool, err error, what string, scan func(*sql.Rows) (*T, error)) ([]*T, error) {
	out := []*T{}
	if err != nil || !ok {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read %s: %w", what, err)
	}
	return out, nil
}

// FindFaults implements lodestone.TelemetryService.
func (db *DB) FindFaults(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Fault, error) {
	rows, ok, err := db.query(ctx, faultColumns, "faults", "", f, "")
	return collect(rows, ok, err, "fault", func(rows *sql.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
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
	var extra string
	var args []any
	if f.Key != "" {
		extra = "x.key_id = (SELECT id FROM metric_keys WHERE name = ?)"
		args = append(args, f.Key)
	}
	rows, ok, err := db.queryPage(ctx, cols, "metrics", " JOIN metric_keys k ON k.id = x.key_id", f.TelemetryFilter,
		n, 0, extra, args...)
	return collect(rows, ok, err, "metric", func(rows *sql.Rows) (*lodestone.Metric, error) {
		var v lodestone.Metric
		var value, maxV sql.NullFloat64
		var ticks, at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &v.Key, &v.Type, &value, &maxV, &v.Raw, &ticks,
			&at); err != nil {
			return nil, err
		}
		v.Value, v.Max = nullToNaN(value), 0
		if v.Type == lodestone.MetricHistogram {
			v.Max = nullToNaN(maxV)
		}
		v.Ticks, v.ReceivedAt = uint64(ticks), fromMS(at)
		return &v, nil
	})
}

func nullToNaN(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// FindReboots implements lodestone.TelemetryService.
func (db *DB) FindReboots(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Reboot, error) {
	rows, ok, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.reason, x.extra, x.boot_sequence,
		x.uptime_before_reboot, x.received_at`, "reboots", "", f, "")
	return collect(rows, ok, err, "reboot", func(rows *sql.Rows) (*lodestone.Reboot, error) {
		var v lodestone.Reboot
		var at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &v.Reason, &v.Extra, &v.BootSequence,
			&v.UptimeBeforeReboot, &at); err != nil {
			return nil, err
		}
		v.ReceivedAt = fromMS(at)
		return &v, nil
	})
}

// FindHeartbeats implements lodestone.TelemetryService.
func (db *DB) FindHeartbeats(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Heartbeat, error) {
	rows, ok, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.uptime_ticks, x.free_stack, x.metrics_count,
		x.frames_lost, x.device_key, x.received_at`, "heartbeats", "", f, "")
	return collect(rows, ok, err, "heartbeat", func(rows *sql.Rows) (*lodestone.Heartbeat, error) {
		var v lodestone.Heartbeat
		var ticks, at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &ticks, &v.FreeStack, &v.MetricsCount,
			&v.FramesLost, &v.DeviceKey, &at); err != nil {
			return nil, err
		}
		v.UptimeTicks, v.ReceivedAt = uint64(ticks), fromMS(at)
		return &v, nil
	})
}

// FindTraces implements lodestone.TelemetryService.
func (db *DB) FindTraces(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Trace, error) {
	rows, ok, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.data, x.received_at`, "traces", "", f, "")
	return collect(rows, ok, err, "trace", func(rows *sql.Rows) (*lodestone.Trace, error) {
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
	rows, ok, err := db.query(ctx, `x.id, x.device_id, d.device_id, x.build_id, x.max_chunk_size, x.ota_capable,
		x.received_at`, "ota_requests", "", f, "")
	return collect(rows, ok, err, "OTA request", func(rows *sql.Rows) (*lodestone.OtaRequest, error) {
		var v lodestone.OtaRequest
		var build, at int64
		if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &build, &v.MaxChunkSize, &v.OtaCapable,
			&at); err != nil {
			return nil, err
		}
		v.BuildID, v.ReceivedAt = uint64(build), fromMS(at)
		return &v, nil
	})
}
