package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// maxAttempts bounds how often a write transaction that lost a race with another replica (a deadlock or a
// serialization failure) is run again before the error goes to the caller.
const maxAttempts = 4

// WriteTelemetry implements lodestone.TelemetryWriter: every batch in one transaction, in three round trips
// whatever the size: devices and metric keys, then every record table at once, then the commit.
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
		if !retryable(err) {
			break
		}
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
		db.keys[k] = id
	}
}

func (db *DB) write(ctx context.Context, batches []*lodestone.DeviceBatch) (map[string]int64, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin write: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	devs, keys, err := db.upsertDevicesAndKeys(ctx, tx, batches)
	if err != nil {
		return nil, err
	}
	rec := newRecords()
	for _, b := range batches {
		rec.add(b, devs[b.DeviceID], keys, db)
	}
	if err := rec.insert(ctx, tx); err != nil {
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
	return keys, nil
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

// upsertDevicesAndKeys creates or refreshes every device of the batches and resolves the metric key names this
// replica has not cached, in one round trip. It returns device row ids by device id and the newly resolved keys.
func (db *DB) upsertDevicesAndKeys(ctx context.Context, tx pgx.Tx, batches []*lodestone.DeviceBatch) (
	map[string]int64, map[string]int64, error) {
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
	// Every replica locks device rows in the same order, so concurrent group commits cannot deadlock each other.
	slices.SortFunc(rows, func(a, b *deviceRow) int {
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})

	devs := make(map[string]int64, len(rows))
	rows, err := db.skipFresh(ctx, tx, rows, devs)
	if err != nil {
		return nil, nil, err
	}

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

	var names []string
	db.mu.RLock()
	seen := make(map[string]bool)
	for _, b := range batches {
		for i := range b.Metrics {
			k := b.Metrics[i].Key
			if _, ok := db.keys[k]; !ok && !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	db.mu.RUnlock()
	slices.Sort(names)

	var batch pgx.Batch
	if len(ids) > 0 {
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
		batch.Queue(`INSERT INTO devices (device_id, status, first_seen, last_seen)
			SELECT u.device_id, 'online', u.first, u.last
			FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(device_id, first, last)
			ORDER BY u.device_id
			ON CONFLICT (device_id) DO UPDATE SET
				status = 'online',
				last_seen = GREATEST(devices.last_seen, excluded.last_seen)
			RETURNING id, device_id`, bareIDs, bareFirsts, bareLasts)
	}
	if len(names) > 0 {
		// DO NOTHING then SELECT: a key another replica is inserting right now is waited for and then found.
		batch.Queue(`INSERT INTO metric_keys (name) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING`,
			names)
		batch.Queue(`SELECT id, name FROM metric_keys WHERE name = ANY($1::text[])`, names)
	}
	keys := make(map[string]int64, len(names))
	br := tx.SendBatch(ctx, &batch)
	defer br.Close()
	for _, n := range []int{len(ids), len(bareIDs)} {
		if n == 0 {
			continue
		}
		r, err := br.Query()
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: upsert devices: %w", err)
		}
		for r.Next() {
			var id int64
			var name string
			if err := r.Scan(&id, &name); err != nil {
				r.Close()
				return nil, nil, fmt.Errorf("postgres: upsert devices: %w", err)
			}
			devs[name] = id
		}
		r.Close()
		if err := r.Err(); err != nil {
			return nil, nil, fmt.Errorf("postgres: upsert devices: %w", err)
		}
	}
	if len(names) > 0 {
		if _, err := br.Exec(); err != nil {
			return nil, nil, fmt.Errorf("postgres: insert metric keys: %w", err)
		}
		r, err := br.Query()
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: read metric keys: %w", err)
		}
		for r.Next() {
			var id int64
			var name string
			if err := r.Scan(&id, &name); err != nil {
				r.Close()
				return nil, nil, fmt.Errorf("postgres: read metric keys: %w", err)
			}
			keys[name] = id
		}
		r.Close()
		if err := r.Err(); err != nil {
			return nil, nil, fmt.Errorf("postgres: read metric keys: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("postgres: upsert devices: %w", err)
	}
	return devs, keys, nil
}

// lastSeenSlack is how far a device's stored last contact may trail the newest one before a write moves it. A
// device that posts several times a second would otherwise rewrite (and lock) its row in every transaction, and
// replicas writing for the same devices would queue on those row locks.
const lastSeenSlack = 1000 // ms

// skipFresh looks the devices up without locking them and takes out of rows every device that is online, says
// nothing new about its firmware and was last seen within lastSeenSlack: its row id goes into devs and its row is
// left alone. It returns the devices that still need their upsert.
func (db *DB) skipFresh(ctx context.Context, tx pgx.Tx, rows []*deviceRow, devs map[string]int64) ([]*deviceRow,
	error) {
	names := make([]string, len(rows))
	for i, d := range rows {
		names[i] = d.id
	}
	found, err := tx.Query(ctx, `SELECT id, device_id, firmware_version, build_id, status, last_seen FROM devices
		WHERE device_id = ANY($1::text[])`, names)
	if err != nil {
		return nil, fmt.Errorf("postgres: look up devices: %w", err)
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
			return nil, fmt.Errorf("postgres: look up devices: %w", err)
		}
		have[name] = st
	}
	found.Close()
	if err := found.Err(); err != nil {
		return nil, fmt.Errorf("postgres: look up devices: %w", err)
	}
	out := rows[:0]
	for _, d := range rows {
		st, ok := have[d.id]
		if ok && st.status == string(lodestone.StatusOnline) && d.last-st.last < lastSeenSlack &&
			(!d.info || d.fw == st.fw && d.build == st.build) {
			devs[d.id] = st.id
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// records holds every record of a transaction as one array per column, so each table takes one INSERT … SELECT
// FROM unnest(…) however many rows it gets. Row order is kept, so ids follow arrival order.
type records struct {
	mDev, mKey, mTicks, mAt []int64
	mType                   []int16
	mValue, mMax            []*float64
	mRaw                    [][]byte

	hDev, hTicks, hFree, hCount, hLost, hKey, hAt []int64
	touchKey, touchDev, touchAt                   []int64

	fDev, fAt []int64
	fType     []int16
	fRegs     [21][]int64
	fStack    [][]byte
	rDev, rAt []int64
	rReason   []int16
	rExtra    []int16
	rSeq, rUp []int64
	oDev, oAt []int64
	oBuild    []int64
	oChunk    []int32
	oCapable  []int16
}

func newRecords() *records { return &records{} }

func (r *records) add(b *lodestone.DeviceBatch, dev int64, newKeys map[string]int64, db *DB) {
	at := ms(b.ReceivedAt)
	for i := range b.Heartbeats {
		h := &b.Heartbeats[i]
		r.hDev, r.hTicks, r.hFree = append(r.hDev, dev), append(r.hTicks, int64(h.UptimeTicks)), append(r.hFree, int64(h.FreeStack))
		r.hCount, r.hLost = append(r.hCount, int64(h.MetricsCount)), append(r.hLost, int64(h.FramesLost))
		r.hKey, r.hAt = append(r.hKey, int64(h.DeviceKey)), append(r.hAt, at)
		if h.DeviceKey != 0 {
			r.touchKey, r.touchDev, r.touchAt = append(r.touchKey, int64(h.DeviceKey)), append(r.touchDev, dev), append(r.touchAt, at)
		}
	}
	if len(b.Metrics) > 0 {
		db.mu.RLock()
		for i := range b.Metrics {
			m := &b.Metrics[i]
			key, ok := db.keys[m.Key]
			if !ok {
				key = newKeys[m.Key]
			}
			var value, maxV *float64
			var raw []byte
			switch m.Type {
			case lodestone.MetricCounter, lodestone.MetricGauge:
				value = nanToNull(m.Value)
			case lodestone.MetricHistogram:
				value, maxV = nanToNull(m.Value), nanToNull(m.Max)
			default:
				raw = m.Raw
				if raw == nil {
					raw = []byte{}
				}
			}
			r.mDev, r.mKey, r.mType = append(r.mDev, dev), append(r.mKey, key), append(r.mType, int16(m.Type))
			r.mValue, r.mMax, r.mRaw = append(r.mValue, value), append(r.mMax, maxV), append(r.mRaw, raw)
			r.mTicks, r.mAt = append(r.mTicks, int64(m.Ticks)), append(r.mAt, at)
		}
		db.mu.RUnlock()
	}
	for i := range b.Faults {
		f := &b.Faults[i]
		g := &f.Registers
		r.fDev, r.fAt, r.fType = append(r.fDev, dev), append(r.fAt, at), append(r.fType, int16(f.FaultType))
		for j, v := range [21]uint32{g.R0, g.R1, g.R2, g.R3, g.R12, g.LR, g.PC, g.XPSR, g.R4, g.R5, g.R6, g.R7, g.R8,
			g.R9, g.R10, g.R11, g.SP, f.CFSR, f.HFSR, f.MMFAR, f.BFAR} {
			r.fRegs[j] = append(r.fRegs[j], int64(v))
		}
		r.fStack = append(r.fStack, packStack(&f.Stack))
	}
	for i := range b.Reboots {
		x := &b.Reboots[i]
		r.rDev, r.rAt = append(r.rDev, dev), append(r.rAt, at)
		r.rReason, r.rExtra = append(r.rReason, int16(x.Reason)), append(r.rExtra, int16(x.Extra))
		r.rSeq, r.rUp = append(r.rSeq, int64(x.BootSequence)), append(r.rUp, int64(x.UptimeBeforeReboot))
	}
	for i := range b.OtaRequests {
		o := &b.OtaRequests[i]
		r.oDev, r.oAt, r.oBuild = append(r.oDev, dev), append(r.oAt, at), append(r.oBuild, int64(o.BuildID))
		r.oChunk, r.oCapable = append(r.oChunk, int32(o.MaxChunkSize)), append(r.oCapable, int16(o.OtaCapable))
	}
}

const faultCols = "r0, r1, r2, r3, r12, lr, pc, xpsr, r4, r5, r6, r7, r8, r9, r10, r11, sp, cfsr, hfsr, mmfar, bfar"

// insert writes every collected record in one round trip.
func (r *records) insert(ctx context.Context, tx pgx.Tx) error {
	var batch pgx.Batch
	var what []string
	if len(r.hDev) > 0 {
		batch.Queue(`INSERT INTO heartbeats (device_id, uptime_ticks, free_stack, metrics_count, frames_lost,
			device_key, received_at)
			SELECT a, b, c, d, e, f, g FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
				$6::int8[], $7::int8[]) WITH ORDINALITY AS u(a, b, c, d, e, f, g, n) ORDER BY n`,
			r.hDev, r.hTicks, r.hFree, r.hCount, r.hLost, r.hKey, r.hAt)
		what = append(what, "insert heartbeats")
	}
	if len(r.touchKey) > 0 {
		// ferrite semantics: a heartbeat carrying a device key also marks the device provisioned with that key.
		batch.Queue(`UPDATE devices d SET status = 'online', last_seen = GREATEST(d.last_seen, u.at)
			FROM (SELECT key, dev, max(at) AS at FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS t(key, dev, at)
				GROUP BY key, dev) u
			WHERE d.device_key = u.key AND d.id <> u.dev`, r.touchKey, r.touchDev, r.touchAt)
		what = append(what, "touch devices by key")
	}
	if len(r.mDev) > 0 {
		batch.Queue(`INSERT INTO metrics (device_id, key_id, type, value, max, raw, ticks, received_at)
			SELECT a, b, c, d, e, f, g, h FROM unnest($1::int8[], $2::int8[], $3::int2[], $4::float8[], $5::float8[],
				$6::bytea[], $7::int8[], $8::int8[]) WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, n) ORDER BY n`,
			r.mDev, r.mKey, r.mType, r.mValue, r.mMax, r.mRaw, r.mTicks, r.mAt)
		what = append(what, "insert metrics")
	}
	if len(r.fDev) > 0 {
		params := []any{r.fDev, r.fType, r.fStack, r.fAt}
		sel := "u.c1, u.c2, u.c3, u.c4"
		arrays := "$1::int8[], $2::int2[], $3::bytea[], $4::int8[]"
		cols := "c1, c2, c3, c4"
		for j := range r.fRegs {
			params = append(params, r.fRegs[j])
			n := len(params)
			sel += fmt.Sprintf(", u.c%d", n)
			arrays += fmt.Sprintf(", $%d::int8[]", n)
			cols += fmt.Sprintf(", c%d", n)
		}
		batch.Queue(`INSERT INTO faults (device_id, fault_type, stack, received_at, `+faultCols+`)
			SELECT `+sel+` FROM unnest(`+arrays+`) WITH ORDINALITY AS u(`+cols+`, n) ORDER BY n`, params...)
		what = append(what, "insert faults")
	}
	if len(r.rDev) > 0 {
		batch.Queue(`INSERT INTO reboots (device_id, reason, extra, boot_sequence, uptime_before_reboot, received_at)
			SELECT a, b, c, d, e, f FROM unnest($1::int8[], $2::int2[], $3::int2[], $4::int8[], $5::int8[], $6::int8[])
				WITH ORDINALITY AS u(a, b, c, d, e, f, n) ORDER BY n`,
			r.rDev, r.rReason, r.rExtra, r.rSeq, r.rUp, r.rAt)
		what = append(what, "insert reboots")
	}
	if len(r.oDev) > 0 {
		batch.Queue(`INSERT INTO ota_requests (device_id, build_id, max_chunk_size, ota_capable, received_at)
			SELECT a, b, c, d, e FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::int2[], $5::int8[])
				WITH ORDINALITY AS u(a, b, c, d, e, n) ORDER BY n`,
			r.oDev, r.oBuild, r.oChunk, r.oCapable, r.oAt)
		what = append(what, "insert OTA requests")
	}
	if len(what) == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, &batch)
	for _, w := range what {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("postgres: %s: %w", w, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: insert telemetry: %w", err)
	}
	return nil
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
