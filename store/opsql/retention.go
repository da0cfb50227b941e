package opsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
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
	n, err := s.purgeBlocks(ctx, ms(cutoff), batch)
	out["metrics"] += n
	return out, err
}

// blockMaxSpan bounds the time a sealed block covers (store/sqlite's sealMaxSpan).
const blockMaxSpan = 12 * 3600_000

// purgeBlocks purges the sealed metric points (migration 00170) before cutoff and returns how many went: whole
// blocks by their last time, in batches, and the blocks that straddle the cutoff rewritten without their older
// points. On SQLite it then drops the 1-minute rollups of whole minutes before the cutoff, whose sealed points no
// delete trigger counted down.
func (s *Ops) purgeBlocks(ctx context.Context, cutoff int64, batch int) (int64, error) {
	var total int64
	del := s.q(`DELETE FROM metric_blocks WHERE id IN (SELECT id FROM metric_blocks WHERE t_max < ? LIMIT ?)
		RETURNING n`)
	for {
		var blocks int
		err := s.tx(ctx, "purge metric_blocks", func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, del, cutoff, batch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var n int64
				if err := rows.Scan(&n); err != nil {
					return err
				}
				total += n
				blocks++
			}
			return rows.Err()
		})
		if err != nil {
			return total, err
		}
		if blocks < batch {
			break
		}
	}
	err := s.tx(ctx, "trim metric_blocks", func(tx *sql.Tx) error {
		type block struct {
			id, dev, key int64
			data         []byte
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, device_id, key_id, data FROM metric_blocks
			WHERE t_max >= ? AND t_max < ? AND t_min < ?`), cutoff, cutoff+blockMaxSpan, cutoff)
		if err != nil {
			return err
		}
		var trim []block
		for rows.Next() {
			var b block
			if err := rows.Scan(&b.id, &b.dev, &b.key, &b.data); err != nil {
				rows.Close()
				return err
			}
			trim = append(trim, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, b := range trim {
			pts, err := metricblock.Decode(b.data)
			if err != nil {
				return fmt.Errorf("block %d: %w", b.id, err)
			}
			keep := slices.DeleteFunc(slices.Clone(pts), func(p metricblock.Point) bool { return p.At < cutoff })
			total += int64(len(pts) - len(keep))
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM metric_blocks WHERE id = ?`), b.id); err != nil {
				return err
			}
			if len(keep) == 0 {
				continue
			}
			data, err := metricblock.Encode(keep)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO metric_blocks (device_id, key_id, t_min, t_max, n, data)
				VALUES (?, ?, ?, ?, ?, ?)`), b.dev, b.key, keep[0].At, keep[len(keep)-1].At, len(keep), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || s.postgres {
		return total, err
	}
	return total, s.tx(ctx, "purge metric_rollups", func(tx *sql.Tx) error {
		// Per key, so each delete is a range of the (key_id, bucket) key.
		_, err := tx.ExecContext(ctx, `DELETE FROM metric_rollups WHERE key_id IN (SELECT id FROM metric_keys)
			AND bucket <= ?`, cutoff-60_000)
		return err
	})
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
