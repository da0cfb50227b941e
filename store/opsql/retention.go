package opsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// purged are the tables retention empties by age: all device telemetry (ferrite purges metrics, faults and
// reboots; lodestone keeps more kinds), the fleet-health rollups and device events derived from it, and finished
// alert deliveries. Devices, crash groups, ELF files and OTA state are kept. None has children, so deleting rows
// checks no foreign key. key is what a batch selects rows by (the stability rollups have no id); shift moves the
// cutoff back, so an hourly rollup goes only once its whole hour is older than the cutoff.
var purged = []struct {
	table, where, key string
	shift             int64
}{
	{table: "metrics", where: "received_at < ?"},
	{table: "heartbeats", where: "received_at < ?"},
	{table: "faults", where: "received_at < ?"},
	{table: "reboots", where: "received_at < ?"},
	{table: "traces", where: "received_at < ?"},
	{table: "trace_fragments", where: "received_at < ?"},
	{table: "ota_requests", where: "received_at < ?"},
	{table: "device_events", where: "at < ?"},
	{table: "stability_hours", where: "hour <= ?", key: "hour, device_id, version", shift: 3600_000},
	{table: "stability_reboots", where: "hour <= ?", key: "hour, device_id, version, reason", shift: 3600_000},
	{table: "alert_deliveries", where: "created_at < ? AND status <> 'pending'"},
}

// PurgeBefore implements lodestone.RetentionStore. Each batch is its own short transaction (on SQLite it takes
// the writer between two group commits), so ingest waits at most one batch.
func (s *Ops) PurgeBefore(ctx context.Context, cutoff time.Time, batch int) (map[string]int64, error) {
	if batch <= 0 {
		batch = 5000
	}
	out := make(map[string]int64, len(purged))
	for _, p := range purged {
		key := p.key
		if key == "" {
			key = "id"
		}
		query := s.q(`DELETE FROM ` + p.table + ` WHERE (` + key + `) IN (SELECT ` + key + ` FROM ` + p.table +
			` WHERE ` + p.where + ` LIMIT ?)`)
		for {
			var n int64
			err := s.tx(ctx, "purge "+p.table, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, query, ms(cutoff)-p.shift, batch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return out, err
			}
			out[p.table] += n
			if n < int64(batch) {
				break
			}
		}
	}
	return out, nil
}

const lastRunKey = "retention.last_run"

// SaveRetentionRun implements lodestone.RetentionStore.
func (s *Ops) SaveRetentionRun(ctx context.Context, r *lodestone.PurgeResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save retention run", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`), lastRunKey, string(b))
		return err
	})
}

// LastRetentionRun implements lodestone.RetentionStore.
func (s *Ops) LastRetentionRun(ctx context.Context) (*lodestone.PurgeResult, error) {
	var v string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT value FROM settings WHERE key = ?`), lastRunKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "retention has not run yet")
	} else if err != nil {
		return nil, fmt.Errorf("%s: read last retention run: %w", s.name, err)
	}
	var r lodestone.PurgeResult
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, fmt.Errorf("%s: last retention run: %w", s.name, err)
	}
	return &r, nil
}
