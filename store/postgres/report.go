package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

var _ lodestone.DeviceReporter = (*DB)(nil)

// countsTail scans a device row followed by its three record counts.
type countsTail struct {
	row     pgx.Row
	f, m, r *int64
}

func (c countsTail) Scan(dest ...any) error { return c.row.Scan(append(dest, c.f, c.m, c.r)...) }

// summaryCounts are correlated counts; each uses the (device_id, received_at) index of its table.
const summaryCounts = `,
	(SELECT count(*) FROM faults WHERE faults.device_id = devices.id),
	(SELECT count(*) FROM metrics WHERE metrics.device_id = devices.id) +
	(SELECT coalesce(sum(n), 0) FROM metric_blocks WHERE metric_blocks.device_id = devices.id),
	(SELECT count(*) FROM reboots WHERE reboots.device_id = devices.id)`

// DeviceSummaries implements lodestone.DeviceReporter; one statement, so the counts agree with each other.
func (db *DB) DeviceSummaries(ctx context.Context, f lodestone.DeviceFilter) ([]*lodestone.DeviceSummary, error) {
	var a args
	var conds []string
	if f.Status != "" {
		conds = append(conds, "status = "+a.add(string(f.Status)))
	}
	q := `SELECT ` + deviceColumns + summaryCounts + ` FROM devices` + where(conds) +
		` ORDER BY last_seen DESC, id DESC LIMIT ` + a.add(lodestone.ClampLimit(f.Limit)) +
		` OFFSET ` + a.add(max(f.Offset, 0))
	rows, err := db.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres: device summaries: %w", err)
	}
	return collect(rows, "device summary", func(r pgx.Rows) (*lodestone.DeviceSummary, error) {
		var s lodestone.DeviceSummary
		d, err := scanDevice(countsTail{r, &s.Faults, &s.Metrics, &s.Reboots})
		if err != nil {
			return nil, err
		}
		s.Device = *d
		return &s, nil
	})
}
