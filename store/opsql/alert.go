package opsql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

const deliveryCols = `id, kind, device_id, url, body, dedup_key, status, attempts, last_status, last_error, created_at,
	next_attempt, delivered_at`

func scanDelivery(sc interface{ Scan(...any) error }) (*lodestone.AlertDelivery, error) {
	var d lodestone.AlertDelivery
	var created, next int64
	var delivered sql.NullInt64
	if err := sc.Scan(&d.ID, &d.Kind, &d.DeviceID, &d.URL, &d.Body, &d.DedupKey, &d.Status, &d.Attempts,
		&d.LastStatus, &d.LastError, &created, &next, &delivered); err != nil {
		return nil, err
	}
	d.CreatedAt, d.NextAttempt = fromMS(created), fromMS(next)
	if delivered.Valid {
		t := fromMS(delivered.Int64)
		d.DeliveredAt = &t
	}
	return &d, nil
}

func scanAll(rows *sql.Rows, err error) ([]*lodestone.AlertDelivery, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*lodestone.AlertDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// EnqueueAlerts implements lodestone.AlertStore.
func (s *Ops) EnqueueAlerts(ctx context.Context, ds []*lodestone.AlertDelivery) (int, error) {
	queued := 0
	err := s.tx(ctx, "queue alerts", func(tx *sql.Tx) error {
		queued = 0
		ins := s.q(`INSERT INTO alert_deliveries (kind, device_id, url, body, dedup_key, status, created_at,
			next_attempt) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (dedup_key, url) DO NOTHING`)
		watch := s.q(`INSERT INTO alert_watch (device_id, offline_at) VALUES (?, ?)
			ON CONFLICT (device_id) DO NOTHING`)
		for _, d := range ds {
			created := d.CreatedAt
			if created.IsZero() {
				created = time.Now()
			}
			next := d.NextAttempt
			if next.IsZero() {
				next = created
			}
			res, err := tx.ExecContext(ctx, ins, d.Kind, d.DeviceID, d.URL, d.Body, d.DedupKey, ms(created), ms(next))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			queued += int(n)
			// Only the replica that queued the offline alert starts watching for the return, so a late copy
			// of the event cannot report a second return.
			if n == 1 && d.Kind == lodestone.AlertDeviceOffline {
				if _, err := tx.ExecContext(ctx, watch, d.DeviceID, ms(created)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return queued, err
}

// ClaimAlerts implements lodestone.AlertStore. On PostgreSQL the candidate rows are locked with SKIP LOCKED, so
// concurrent claimers take different rows instead of waiting for each other; SQLite has one writer anyway.
func (s *Ops) ClaimAlerts(ctx context.Context, now time.Time, lease time.Duration, limit int) (
	[]*lodestone.AlertDelivery, error) {
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var out []*lodestone.AlertDelivery
	err := s.tx(ctx, "claim alerts", func(tx *sql.Tx) error {
		var err error
		out, err = scanAll(tx.QueryContext(ctx, s.q(`UPDATE alert_deliveries SET claimed_until = ?
			WHERE id IN (SELECT id FROM alert_deliveries WHERE status = 'pending' AND next_attempt <= ?
				AND claimed_until <= ? ORDER BY next_attempt, id LIMIT ?`+lock+`)
			RETURNING `+deliveryCols), ms(now.Add(lease)), ms(now), ms(now), limit))
		return err
	})
	if err != nil {
		return nil, err
	}
	// RETURNING gives no order; attempts go oldest first.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// FinishAlert implements lodestone.AlertStore.
func (s *Ops) FinishAlert(ctx context.Context, id int64, ok bool, status int, errText string, now,
	next time.Time) error {
	state, delivered, nextMS := lodestone.DeliveryPending, any(nil), ms(next)
	switch {
	case ok:
		state, delivered, nextMS = lodestone.DeliveryDelivered, ms(now), ms(now)
	case next.IsZero():
		state, nextMS = lodestone.DeliveryFailed, ms(now)
	}
	if len(errText) > 500 {
		errText = errText[:500]
	}
	return s.tx(ctx, "record alert attempt", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE alert_deliveries SET status = ?, attempts = attempts + 1,
			last_status = ?, last_error = ?, next_attempt = ?, claimed_until = 0, delivered_at = ?
			WHERE id = ? AND status = 'pending'`), state, status, errText, nextMS, delivered, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return lodestone.Errorf(lodestone.ENOTFOUND, "alert delivery %d is not pending", id)
		}
		return nil
	})
}

// AlertsBackOnline implements lodestone.AlertStore: the watch rows of devices online again are deleted and their
// alerts queued in the same transaction, so a return is reported exactly once even if the process dies.
func (s *Ops) AlertsBackOnline(ctx context.Context, build func(deviceID string, offlineAt time.Time) []*lodestone.AlertDelivery) ([]string, error) {
	var ids []string
	err := s.tx(ctx, "find devices back online", func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `DELETE FROM alert_watch WHERE device_id IN
			(SELECT d.device_id FROM devices d JOIN alert_watch w ON w.device_id = d.device_id
			 WHERE d.status = 'online') RETURNING device_id, offline_at`)
		if err != nil {
			return err
		}
		type back struct {
			id string
			at int64
		}
		var found []back
		for rows.Next() {
			var b back
			if err := rows.Scan(&b.id, &b.at); err != nil {
				rows.Close()
				return err
			}
			found = append(found, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ins := s.q(`INSERT INTO alert_deliveries (kind, device_id, url, body, dedup_key, status, created_at,
			next_attempt) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (dedup_key, url) DO NOTHING`)
		now := ms(time.Now())
		for _, b := range found {
			ids = append(ids, b.id)
			for _, d := range build(b.id, fromMS(b.at)) {
				if _, err := tx.ExecContext(ctx, ins, d.Kind, d.DeviceID, d.URL, d.Body, d.DedupKey, now, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return ids, err
}

// FindAlertDeliveries implements lodestone.AlertStore.
func (s *Ops) FindAlertDeliveries(ctx context.Context, f lodestone.AlertFilter) ([]*lodestone.AlertDelivery,
	error) {
	where, args := "", []any{}
	if f.Status != "" {
		where, args = " WHERE status = ?", append(args, f.Status)
	}
	args = append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0))
	out, err := scanAll(s.r.QueryContext(ctx, s.q(`SELECT `+deliveryCols+` FROM alert_deliveries`+where+
		` ORDER BY id DESC LIMIT ? OFFSET ?`), args...))
	if err != nil {
		return nil, fmt.Errorf("%s: list alert deliveries: %w", s.name, err)
	}
	return out, nil
}
