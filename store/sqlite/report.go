package sqlite

import (
	"context"
	"fmt"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.DeviceReporter = (*DB)(nil)

// countsTail scans a device row followed by its three record counts.
type countsTail struct {
	s       scanner
	f, m, r *int64
}

func (c countsTail) Scan(dest ...any) error { return c.s.Scan(append(dest, c.f, c.m, c.r)...) }

// summaryCounts are correlated counts; each uses the (device_id, received_at) index of its table.
const summaryCounts = `,
	(SELECT count(*) FROM faults WHERE faults.device_id = devices.id),
	(SELECT count(*) FROM metrics WHERE metrics.device_id = devices.id) +
	(SELECT coalesce(sum(n), 0) FROM metric_blocks WHERE metric_blocks.device_id = devices.id),
	(SELECT count(*) FROM reboots WHERE reboots.device_id = devices.id)`

// DeviceSummaries implements lodestone.DeviceReporter in one read transaction, so the counts agree with each other.
func (db *DB) DeviceSummaries(ctx context.Context, f lodestone.DeviceFilter) ([]*lodestone.DeviceSummary, error) {
	q := `SELECT ` + deviceColumns + summaryCounts + ` FROM devices`
	var args []any
	if f.Status != "" {
		q += ` WHERE status = ?`
		args = append(args, string(f.Status))
	}
	q += ` ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0))
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: device summaries: %w", err)
	}
	defer rows.Close()
	out := []*lodestone.DeviceSummary{}
	for rows.Next() {
		var s lodestone.DeviceSummary
		d, err := scanDevice(countsTail{rows, &s.Faults, &s.Metrics, &s.Reboots})
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan device summary: %w", err)
		}
		s.Device = *d
		out = append(out, &s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: device summaries: %w", err)
	}
	return out, nil
}
