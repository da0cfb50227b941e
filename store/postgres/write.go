package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// maxAttempts bounds how often a write transaction that lost a race with another replica (a deadlock, a
// serialization failure, or a device deleted between its lookup and the write) is run again before the error goes
// to the caller.
const maxAttempts = schema.Attempts

// WriteTelemetry implements lodestone.TelemetryWriter: every batch in one transaction. Devices are looked up
// first; when every device and metric key is known (the steady state), the transaction is a single pipelined
// round trip. Otherwise devices and keys are upserted first, then every record table at once, then the commit.
func (db *DB) WriteTelemetry(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		var keys map[string]int64
		if keys, err = db.write(ctx, batches); err == nil {
			db.remember(keys)
			return nil
		}
		var pe *pgconn.PgError
		if !retryable(err) && !(errors.As(err, &pe) && pe.Code == "23503") { // foreign_key_violation
			break
		}
	}
	return refused(err)
}

// refused marks an error that the data caused as EINVALID, so that ingest reports it instead of answering 503:
// retrying the same data cannot succeed. That is a data exception (class 22: NUL or invalid UTF-8 in text, a
// value out of range), an integrity violation other than the foreign key one a concurrent delete causes (class
// 23), or a value past a limit such as the btree row size (54000). Ingest validates client data before it gets
// here; this is the backstop for anything that validation misses.
func refused(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") &&
		pe.Code != "23503" || pe.Code == "54000") {
		return errors.Join(lodestone.Errorf(lodestone.EINVALID, "the database refused the data as invalid"), err)
	}
	return err
}

func (db *DB) remember(keys map[string]int64) {
	if len(keys) == 0 {
		return
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	for k, id := range keys {
		db.keys.Add(k, id)
	}
}

func (db *DB) write(ctx context.Context, batches []*lodestone.DeviceBatch) (map[string]int64, error) {
	rows := mergeDevices(batches)
	devs := make(map[string]int64, len(rows))
	stale, missing, err := db.lookupDevices(ctx, rows, devs)
	if err != nil {
		return nil, err
	}
	keys, names := db.cachedKeys(batches)
	if missing == 0 && len(names) == 0 && !hasTraces(batches) {
		// The steady state: every row id is known, so the whole write is one pipelined batch, which PostgreSQL
		// runs as one implicit transaction, committed when its last statement succeeds: one round trip.
		var batch pgx.Batch
		var what []string
		for range queueDeviceUpserts(&batch, stale) {
			what = append(what, "refresh devices")
		}
		rec := newRecords()
		for _, b := range batches {
			rec.add(b, devs[b.DeviceID], keys)
		}
		return nil, sendBatch(ctx, db.pool, &batch, rec.queue(&batch, what))
	}

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin write: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	newKeys, err := upsertDevicesAndKeys(ctx, tx, stale, names, devs)
	if err != nil {
		return nil, err
	}
	for k, id := range newKeys {
		keys[k] = id
	}
	rec := newRecords()
	for _, b := range batches {
		rec.add(b, devs[b.DeviceID], keys)
	}
	var batch pgx.Batch
	if err := sendBatch(ctx, tx, &batch, rec.queue(&batch, nil)); err != nil {
		return nil, err
	}
	for _, b := range batches {
		if len(b.TraceFragments) > 0 {
			if err := traceFragments(ctx, tx, devs[b.DeviceID], b.TraceFragments, ms(b.ReceivedAt)); err != nil {
				return nil, fmt.Errorf("postgres: write traces of device %q: %w", b.DeviceID, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: commit telemetry: %w", err)
	}
	return newKeys, nil
}

func hasTraces(batches []*lodestone.DeviceBatch) bool {
	for _, b := range batches {
		if len(b.TraceFragments) > 0 {
			return true
		}
	}
	return false
}

// deviceRow is one device's upsert, merged over every batch of the transaction: the last DeviceInfo wins, as it
// would if the batches were written one after another.
type deviceRow struct {
	id          string
	fw          string
	build       int64
	first, last int64
	info        bool
}

// mergeDevices returns one row per device of the batches, sorted by device id: every replica locks device rows in
// the same order, so concurrent group commits cannot deadlock each other.
func mergeDevices(batches []*lodestone.DeviceBatch) []*deviceRow {
	merged := make(map[string]*deviceRow)
	for _, b := range batches {
		at := ms(b.ReceivedAt)
		d := merged[b.DeviceID]
		if d == nil {
			d = &deviceRow{id: b.DeviceID, first: at, last: at}
			merged[b.DeviceID] = d
		}
		d.first, d.last = min(d.first, at), max(d.last, at)
		if b.Info != nil {
			d.fw, d.build, d.info = b.Info.FirmwareVersion, int64(b.Info.BuildID), true
		}
	}
	rows := make([]*deviceRow, 0, len(merged))
	for _, d := range merged {
		rows = append(rows, d)
	}
	slices.SortFunc(rows, func(a, b *deviceRow) int { return strings.Compare(a.id, b.id) })
	return rows
}

// cachedKeys returns the ids this replica has cached for the metric keys of the batches, and the names it has no
// id for, sorted.
func (db *DB) cachedKeys(batches []*lodestone.DeviceBatch) (map[string]int64, []string) {
	var names []string
	known := make(map[string]int64)
	seen := make(map[string]bool)
	db.mu.Lock()
	for _, b := range batches {
		for i := range b.Metrics {
			k := b.Metrics[i].Key
			if seen[k] {
				continue
			}
			seen[k] = true
			if id, ok := db.keys.Get(k); ok {
				known[k] = id
			} else {
				names = append(names, k)
			}
		}
	}
	db.mu.Unlock()
	slices.Sort(names)
	return known, names
}

// queueDeviceUpserts queues the upserts of rows (at most two statements, each returning id and device_id) and
// returns how many it queued.
func queueDeviceUpserts(batch *pgx.Batch, rows []*deviceRow) int {
	var ids, fws []string
	var builds, firsts, lasts []int64
	var bareIDs []string
	var bareFirsts, bareLasts []int64
	for _, d := range rows {
		if d.info {
			ids, fws = append(ids, d.id), append(fws, d.fw)
			builds, firsts, lasts = append(builds, d.build), append(firsts, d.first), append(lasts, d.last)
		} else {
			bareIDs, bareFirsts, bareLasts = append(bareIDs, d.id), append(bareFirsts, d.first), append(bareLasts, d.last)
		}
	}
	n := 0
	if len(ids) > 0 {
		n++
		batch.Queue(`INSERT INTO devices (device_id, firmware_version, build_id, status, first_seen, last_seen)
			SELECT u.device_id, u.fw, u.build, 'online', u.first, u.last
			FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) AS u(device_id, fw, build, first, last)
			ORDER BY u.device_id
			ON CONFLICT (device_id) DO UPDATE SET
				firmware_version = excluded.firmware_version,
				build_id = excluded.build_id,
				status = 'online',
				last_seen = GREATEST(devices.last_seen, excluded.last_seen)
			RETURNING id, device_id`, ids, fws, builds, firsts, lasts)
	}
	if len(bareIDs) > 0 {
		n++
		batch.Queue(`INSERT INTO devices (device_id, status, first_seen, last_seen)
			SELECT u.device_id, 'online', u.first, u.last
			FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(device_id, first, last)
			ORDER BY u.device_id
			ON CONFLICT (device_id) DO UPDATE SET
				status = 'online',
				last_seen = GREATEST(devices.last_seen, excluded.last_seen)
			RETURNING id, device_id`, bareIDs, bareFirsts, bareLasts)
	}
	return n
}

// upsertDevicesAndKeys creates or refreshes rows and resolves the metric key names, in one round trip. It adds
// the devices' row ids to devs and returns the resolved keys.
func upsertDevicesAndKeys(ctx context.Context, tx pgx.Tx, rows []*deviceRow, names []string,
	devs map[string]int64) (map[string]int64, error) {
	var batch pgx.Batch
	upserts := queueDeviceUpserts(&batch, rows)
	if len(names) > 0 {
		// DO NOTHING then SELECT: a key another replica is inserting right now is waited for and then found.
		batch.Queue(`INSERT INTO metric_keys (name) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING`,
			names)
		batch.Queue(`SELECT id, name FROM metric_keys WHERE name = ANY($1::text[])`, names)
	}
	keys := make(map[string]int64, len(names))
	if batch.Len() == 0 {
		return keys, nil
	}
	br := tx.SendBatch(ctx, &batch)
	defer br.Close()
	scan := func(what string, into map[string]int64) error {
		r, err := br.Query()
		if err != nil {
			return fmt.Errorf("postgres: %s: %w", what, err)
		}
		for r.Next() {
			var id int64
			var name string
			if err := r.Scan(&id, &name); err != nil {
				r.Close()
				return fmt.Errorf("postgres: %s: %w", what, err)
			}
			into[name] = id
		}
		r.Close()
		if err := r.Err(); err != nil {
			return fmt.Errorf("postgres: %s: %w", what, err)
		}
		return nil
	}
	for range upserts {
		if err := scan("upsert devices", devs); err != nil {
			return nil, err
		}
	}
	if len(names) > 0 {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("postgres: insert metric keys: %w", err)
		}
		if err := scan("read metric keys", keys); err != nil {
			return nil, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: upsert devices: %w", err)
	}
	return keys, nil
}

// lastSeenSlack is lodestone.LastSeenSlack in stored units. Here it also spares row locks: replicas writing for
// the same devices would queue on them.
const lastSeenSlack = int64(lodestone.LastSeenSlack / time.Millisecond)

// lookupDevices reads the rows of the devices without locking them, outside any transaction. Every device that
// is online, says nothing new about its firmware and was last seen within lastSeenSlack gets its row id in devs
// and is left alone. It returns the devices that still need their upsert, and how many of them have no row yet.
func (db *DB) lookupDevices(ctx context.Context, rows []*deviceRow, devs map[string]int64) ([]*deviceRow, int,
	error) {
	names := make([]string, len(rows))
	for i, d := range rows {
		names[i] = d.id
	}
	// One index probe per name: with = ANY(…) the planner scans a small devices table whole and compares every
	// row with every name, which cost more than the telemetry insert itself.
	found, err := db.pool.Query(ctx, `SELECT d.id, d.device_id, d.firmware_version, d.build_id, d.status, d.last_seen
		FROM unnest($1::text[]) AS u(name)
		CROSS JOIN LATERAL (SELECT id, device_id, firmware_version, build_id, status, last_seen FROM devices
			WHERE device_id = u.name LIMIT 1) d`, names)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: look up devices: %w", err)
	}
	type stored struct {
		id          int64
		fw, status  string
		build, last int64
	}
	have := make(map[string]stored, len(rows))
	for found.Next() {
		var st stored
		var name string
		if err := found.Scan(&st.id, &name, &st.fw, &st.build, &st.status, &st.last); err != nil {
			found.Close()
			return nil, 0, fmt.Errorf("postgres: look up devices: %w", err)
		}
		have[name] = st
	}
	found.Close()
	if err := found.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres: look up devices: %w", err)
	}
	var out []*deviceRow
	missing := 0
	for _, d := range rows {
		st, ok := have[d.id]
		switch {
		case !ok:
			missing++
		case st.status == string(lodestone.StatusOnline) && d.last-st.last < lastSeenSlack &&
			(!d.info || d.fw == st.fw && d.build == st.build):
			devs[d.id] = st.id
			continue
		default:
			devs[d.id] = st.id // an upsert keeps the row, and its id
		}
		out = append(out, d)
	}
	return out, missing, nil
}

// traceFragments stores fragments; when one is flagged last, the device's fragments are assembled into a trace.
// Fragments that cannot be assembled (a gap or a conflict) stay stored rather than being dropped.
func traceFragments(ctx context.Context, tx pgx.Tx, dev int64, frags []lodestone.TraceFragment, at int64) error {
	for _, f := range frags {
		if _, err := tx.Exec(ctx, `INSERT INTO trace_fragments (device_id, byte_offset, data, received_at)
			VALUES ($1, $2, $3, $4)`, dev, int64(f.Offset), f.Data, at); err != nil {
			return fmt.Errorf("insert trace fragment: %w", err)
		}
		if !f.Last {
			continue
		}
		rows, err := tx.Query(ctx, `SELECT byte_offset, data FROM trace_fragments WHERE device_id = $1
			ORDER BY byte_offset, id`, dev)
		if err != nil {
			return fmt.Errorf("read trace fragments: %w", err)
		}
		stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lodestone.TraceFragment, error) {
			var f lodestone.TraceFragment
			var off int64
			err := row.Scan(&off, &f.Data)
			f.Offset = uint64(off)
			return f, err
		})
		if err != nil {
			return fmt.Errorf("read trace fragments: %w", err)
		}
		data, err := lodestone.AssembleTrace(stored, lodestone.MaxTraceSize)
		if err != nil {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO traces (device_id, data, received_at) VALUES ($1, $2, $3)`,
			dev, data, at); err != nil {
			return fmt.Errorf("insert trace: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM trace_fragments WHERE device_id = $1`, dev); err != nil {
			return fmt.Errorf("delete assembled fragments: %w", err)
		}
	}
	return nil
}

func nanToNull(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func packStack(s *[16]uint32) []byte {
	b := make([]byte, 64)
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[i*4:], v)
	}
	return b
}

func unpackStack(b []byte) (s [16]uint32) {
	for i := 0; i < 16 && len(b) >= i*4+4; i++ {
		s[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return s
}
