package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// writeStmts are prepared once on the writer connection and bound to each transaction.
type writeStmts struct {
	upsertDevice, findDevice, touchDevice, touchByKey, metricKey, rollup *sql.Stmt
	fault, reboot, otaRequest, trace                                     *sql.Stmt
	fragment, fragments, dropFragments                                   *sql.Stmt
	metrics, heartbeats                                                  [insertSizes]*sql.Stmt // [i] inserts 1<<i rows at once
}

// rowsPerInsert rows go into one INSERT for the high-volume tables: per-statement overhead dominates
// single-row inserts. What is left at the end of a transaction goes in statements of 32, 16, … 1 rows, so a
// small group (one session per request) costs a few statements rather than a statement per row.
const (
	insertSizes   = 7 // 1, 2, 4, … 64 rows
	rowsPerInsert = 1 << (insertSizes - 1)
)

const (
	metricCols    = "device_id, key_id, type, value, max, raw, ticks, received_at"
	heartbeatCols = "device_id, uptime_ticks, free_stack, metrics_count, frames_lost, device_key, received_at"
)

func multiRowInsert(table, cols string, n, width int) string {
	row := "(" + strings.Repeat("?,", width-1) + "?)"
	return "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.Repeat(row+",", n-1) + row
}

func prepareWriteStmts(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	s := &writeStmts{}
	for _, p := range []struct {
		dst  **sql.Stmt
		text string
	}{
		// One statement creates a device on first contact or refreshes it; a request without DeviceInfo (?5 = 0)
		// leaves firmware and build untouched.
		{&s.upsertDevice, `INSERT INTO devices (device_id, firmware_version, build_id, status, first_seen, last_seen)
			VALUES (?1, ?2, ?3, 'online', ?4, ?4)
			ON CONFLICT (device_id) DO UPDATE SET
				firmware_version = CASE WHEN ?5 THEN excluded.firmware_version ELSE firmware_version END,
				build_id = CASE WHEN ?5 THEN excluded.build_id ELSE build_id END,
				status = 'online',
				last_seen = max(last_seen, excluded.last_seen)
			RETURNING id`},
		// The usual contact: a device online on the firmware it reports. No row (a new device, an offline one,
		// a firmware change) falls back to the upsert; a row last seen within lodestone.LastSeenSlack is left as
		// it is; otherwise touchDevice sets last_seen alone, which leaves the indexes and triggers on status and
		// firmware alone (the upsert sets them, to the same values).
		{&s.findDevice, `SELECT id, last_seen FROM devices
			WHERE device_id = ?1 AND status = 'online' AND (NOT ?4 OR (firmware_version = ?2 AND build_id = ?3))`},
		{&s.touchDevice, `UPDATE devices SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2`},
		// ferrite semantics: a heartbeat carrying a device key also marks the device provisioned with that key.
		{&s.touchByKey, `UPDATE devices SET status = 'online', last_seen = max(last_seen, ?1)
			WHERE device_key = ?2 AND id <> ?3`},
		{&s.metricKey, `INSERT INTO metric_keys (name) VALUES (?1)
			ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`},
		{&s.fault, `INSERT INTO faults (device_id, fault_type, r0, r1, r2, r3, r12, lr, pc, xpsr,
			r4, r5, r6, r7, r8, r9, r10, r11, sp, stack, cfsr, hfsr, mmfar, bfar, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.reboot, `INSERT INTO reboots (device_id, reason, extra, boot_sequence, uptime_before_reboot, received_at)
			VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.otaRequest, `INSERT INTO ota_requests (device_id, build_id, max_chunk_size, ota_capable, received_at)
			VALUES (?, ?, ?, ?, ?)`},
		{&s.trace, `INSERT INTO traces (device_id, data, received_at) VALUES (?, ?, ?)`},
		{&s.fragment, `INSERT INTO trace_fragments (device_id, byte_offset, data, received_at) VALUES (?, ?, ?, ?)`},
		{&s.fragments, `SELECT byte_offset, data FROM trace_fragments WHERE device_id = ? ORDER BY byte_offset, id`},
		{&s.dropFragments, `DELETE FROM trace_fragments WHERE device_id = ?`},
		{&s.rollup, rollupUpsert},
	} {
		if err := s.prepare(ctx, db, p.dst, p.text); err != nil {
			return nil, err
		}
	}
	for i := range insertSizes {
		if err := s.prepare(ctx, db, &s.metrics[i], multiRowInsert("metrics", metricCols, 1<<i, 8)); err != nil {
			return nil, err
		}
		if err := s.prepare(ctx, db, &s.heartbeats[i], multiRowInsert("heartbeats", heartbeatCols, 1<<i, 7)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// prepare prepares text into dst; on failure it closes every statement prepared so far.
func (s *writeStmts) prepare(ctx context.Context, db *sql.DB, dst **sql.Stmt, text string) error {
	st, err := db.PrepareContext(ctx, text)
	if err != nil {
		s.close()
		return fmt.Errorf("sqlite: prepare %.40q: %w", text, err)
	}
	*dst = st
	return nil
}

func (s *writeStmts) close() {
	all := []*sql.Stmt{s.upsertDevice, s.findDevice, s.touchDevice, s.touchByKey, s.metricKey, s.rollup, s.fault, s.reboot, s.otaRequest, s.trace,
		s.fragment, s.fragments, s.dropFragments}
	for _, st := range append(append(all, s.metrics[:]...), s.heartbeats[:]...) {
		if st != nil {
			st.Close()
		}
	}
}

// writeTx is one write transaction with its statements bound to it.
type writeTx struct {
	ctx        context.Context
	tx         *sql.Tx
	db         *DB
	newKeys    map[string]int64 // metric keys created in this transaction; cached only after commit
	bound      map[*sql.Stmt]*sql.Stmt
	metrics    batchedInsert
	heartbeats batchedInsert
	// The 1-minute rollups of this transaction's metric rows (migration 00200: no trigger), by key and minute,
	// merged into metric_rollups once each before commit; pending are the rows not yet inserted, in order.
	rollups map[[2]int64]*partial
	pending []rollupRow
}

// rollupRow is a metric row waiting for its id, and whether it counts in the rollups (counters, gauges and
// histograms do).
type rollupRow struct {
	key    int64
	counts bool
	pt     metricblock.Point
}

// batchedInsert collects rows of one table and inserts them rowsPerInsert at a time.
type batchedInsert struct {
	one, many *sql.Stmt
	sizes     *[insertSizes]*sql.Stmt // if set, [i] inserts 1<<i rows, for the rest at the end
	width     int
	rows      []any
	inserted  func(res sql.Result, n int) error // if set, called after each statement with its row count
}

func (w *writeTx) add(b *batchedInsert, values ...any) error {
	b.rows = append(b.rows, values...)
	return w.flush(b, false)
}

// flush inserts full statements' worth of pending rows; with all set it also inserts the rest, in statements of
// decreasing powers of two.
func (w *writeTx) flush(b *batchedInsert, all bool) error {
	exec := func(st *sql.Stmt, n int) error {
		res, err := w.stmt(st).ExecContext(w.ctx, b.rows[:n*b.width]...)
		if err == nil && b.inserted != nil {
			err = b.inserted(res, n)
		}
		return err
	}
	full := rowsPerInsert * b.width
	for len(b.rows) >= full {
		if err := exec(b.many, rowsPerInsert); err != nil {
			return err
		}
		b.rows = append(b.rows[:0], b.rows[full:]...)
	}
	for i := insertSizes - 2; all && b.sizes != nil && i > 0; i-- {
		if n := 1 << i; len(b.rows) >= n*b.width {
			if err := exec(b.sizes[i], n); err != nil {
				return err
			}
			b.rows = b.rows[n*b.width:]
		}
	}
	for all && len(b.rows) > 0 {
		if err := exec(b.one, 1); err != nil {
			return err
		}
		b.rows = b.rows[b.width:]
	}
	return nil
}

// metricsInserted adds the n oldest pending metric rows, just inserted, to the transaction's rollups. A rowid
// table gives each row of a multi-row INSERT the largest id plus one, in order, so the statement's rows hold the
// n ids ending at the last insert rowid.
func (w *writeTx) metricsInserted(res sql.Result, n int) error {
	last, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("metric row ids: %w", err)
	}
	for i, r := range w.pending[:n] {
		if !r.counts {
			continue
		}
		r.pt.ID = last - int64(n-1-i)
		k := [2]int64{r.key, r.pt.At - r.pt.At%rollupMS}
		p := w.rollups[k]
		if p == nil {
			if w.rollups == nil {
				w.rollups = make(map[[2]int64]*partial)
			}
			p = &partial{}
			w.rollups[k] = p
		}
		p.AddPoint(&r.pt)
	}
	w.pending = append(w.pending[:0], w.pending[n:]...)
	return nil
}

// mergeRollups merges the transaction's rollups into metric_rollups, one statement per key and minute where the
// trigger it replaces ran one per row.
func (w *writeTx) mergeRollups() error {
	for k, v := range w.rollups {
		if _, err := w.stmt(w.db.stmts.rollup).ExecContext(w.ctx, k[0], k[1], v.N, v.NV, v.Total, v.Min, v.Max,
			v.LastAt, v.LastID, v.Last); err != nil {
			return err
		}
	}
	return nil
}

func (w *writeTx) stmt(s *sql.Stmt) *sql.Stmt {
	if b, ok := w.bound[s]; ok {
		return b
	}
	b := w.tx.StmtContext(w.ctx, s)
	w.bound[s] = b
	return b
}

// WriteTelemetry implements lodestone.TelemetryWriter: every batch in one transaction.
func (db *DB) WriteTelemetry(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.stmts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "store is closed")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Statements run without cancellation: the driver would start a watcher goroutine for every statement of a
	// cancellable context, which costs more than the statement. The context is checked between batches instead.
	stmtCtx := context.WithoutCancel(ctx)
	tx, err := db.w.BeginTx(stmtCtx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin write: %w", err)
	}
	w := &writeTx{ctx: stmtCtx, tx: tx, db: db, bound: make(map[*sql.Stmt]*sql.Stmt, 16),
		metrics: batchedInsert{one: db.stmts.metrics[0], many: db.stmts.metrics[insertSizes-1],
			sizes: &db.stmts.metrics, width: 8},
		heartbeats: batchedInsert{one: db.stmts.heartbeats[0], many: db.stmts.heartbeats[insertSizes-1],
			sizes: &db.stmts.heartbeats, width: 7}}
	w.metrics.inserted = w.metricsInserted
	for _, b := range batches {
		if err := ctx.Err(); err != nil {
			tx.Rollback()
			return err
		}
		if err := w.writeBatch(b); err != nil {
			tx.Rollback()
			return refused(fmt.Errorf("sqlite: write telemetry of device %q: %w", b.DeviceID, err))
		}
	}
	if err := w.flush(&w.metrics, true); err != nil {
		tx.Rollback()
		return refused(fmt.Errorf("sqlite: insert metrics: %w", err))
	}
	if err := w.mergeRollups(); err != nil {
		tx.Rollback()
		return fmt.Errorf("sqlite: merge metric rollups: %w", err)
	}
	if err := w.flush(&w.heartbeats, true); err != nil {
		tx.Rollback()
		return refused(fmt.Errorf("sqlite: insert heartbeats: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit telemetry: %w", err)
	}
	for k, id := range w.newKeys {
		db.keys.Add(k, id)
	}
	return nil
}

// lastSeenSlack is lodestone.LastSeenSlack in stored units.
const lastSeenSlack = int64(lodestone.LastSeenSlack / time.Millisecond)

func (w *writeTx) writeBatch(b *lodestone.DeviceBatch) error {
	at := ms(b.ReceivedAt)
	var fw string
	var build uint64
	if b.Info != nil {
		fw, build = b.Info.FirmwareVersion, b.Info.BuildID
	}
	var dev, last int64
	err := w.stmt(w.db.stmts.findDevice).QueryRowContext(w.ctx, b.DeviceID, fw, int64(build),
		b.Info != nil).Scan(&dev, &last)
	if err == nil && at-last >= lastSeenSlack {
		_, err = w.stmt(w.db.stmts.touchDevice).ExecContext(w.ctx, dev, at)
	} else if errors.Is(err, sql.ErrNoRows) {
		err = w.stmt(w.db.stmts.upsertDevice).QueryRowContext(w.ctx, b.DeviceID, fw, int64(build), at,
			b.Info != nil).Scan(&dev)
	}
	if err != nil {
		return fmt.Errorf("upsert device: %w", err)
	}
	for i := range b.Heartbeats {
		h := &b.Heartbeats[i]
		if err := w.add(&w.heartbeats, dev, int64(h.UptimeTicks), h.FreeStack, h.MetricsCount, h.FramesLost,
			h.DeviceKey, at); err != nil {
			return fmt.Errorf("insert heartbeats: %w", err)
		}
		if h.DeviceKey != 0 {
			if _, err := w.stmt(w.db.stmts.touchByKey).ExecContext(w.ctx, at, h.DeviceKey, dev); err != nil {
				return fmt.Errorf("touch device by key: %w", err)
			}
		}
	}
	for i := range b.Metrics {
		if err := w.metric(dev, &b.Metrics[i], at); err != nil {
			return err
		}
	}
	for i := range b.Faults {
		f := &b.Faults[i]
		r := &f.Registers
		if _, err := w.stmt(w.db.stmts.fault).ExecContext(w.ctx, dev, f.FaultType, r.R0, r.R1, r.R2, r.R3, r.R12,
			r.LR, r.PC, r.XPSR, r.R4, r.R5, r.R6, r.R7, r.R8, r.R9, r.R10, r.R11, r.SP, packStack(&f.Stack),
			f.CFSR, f.HFSR, f.MMFAR, f.BFAR, at); err != nil {
			return fmt.Errorf("insert fault: %w", err)
		}
	}
	for i := range b.Reboots {
		r := &b.Reboots[i]
		if _, err := w.stmt(w.db.stmts.reboot).ExecContext(w.ctx, dev, r.Reason, r.Extra, r.BootSequence,
			r.UptimeBeforeReboot, at); err != nil {
			return fmt.Errorf("insert reboot: %w", err)
		}
	}
	for i := range b.OtaRequests {
		o := &b.OtaRequests[i]
		if _, err := w.stmt(w.db.stmts.otaRequest).ExecContext(w.ctx, dev, int64(o.BuildID), o.MaxChunkSize,
			o.OtaCapable, at); err != nil {
			return fmt.Errorf("insert OTA request: %w", err)
		}
	}
	return w.traceFragments(dev, b.TraceFragments, at)
}

func (w *writeTx) metric(dev int64, m *lodestone.Metric, at int64) error {
	key, err := w.keyID(m.Key)
	if err != nil {
		return err
	}
	var value, maxV, raw any
	r := rollupRow{key: key, pt: metricblock.Point{At: at, Type: uint8(m.Type), Value: math.NaN(), Max: math.NaN()}}
	switch m.Type {
	case lodestone.MetricCounter, lodestone.MetricGauge:
		value = nanToNull(m.Value)
		r.counts, r.pt.Value = true, m.Value
	case lodestone.MetricHistogram:
		value, maxV = nanToNull(m.Value), nanToNull(m.Max)
		r.counts, r.pt.Value, r.pt.Max = true, m.Value, m.Max
	default:
		raw = m.Raw
	}
	w.pending = append(w.pending, r)
	if err := w.add(&w.metrics, dev, key, uint8(m.Type), value, maxV, raw, int64(m.Ticks), at); err != nil {
		return fmt.Errorf("insert metrics: %w", err)
	}
	return nil
}

func (w *writeTx) keyID(name string) (int64, error) {
	if id, ok := w.db.keys.Get(name); ok {
		return id, nil
	}
	if id, ok := w.newKeys[name]; ok {
		return id, nil
	}
	var id int64
	if err := w.stmt(w.db.stmts.metricKey).QueryRowContext(w.ctx, name).Scan(&id); err != nil {
		return 0, fmt.Errorf("metric key %q: %w", name, err)
	}
	if w.newKeys == nil {
		w.newKeys = make(map[string]int64)
	}
	w.newKeys[name] = id
	return id, nil
}

// traceFragments stores fragments; when one is flagged last, the device's fragments are assembled into a trace.
// Fragments that cannot be assembled (a gap or a conflict) stay stored rather than being dropped.
func (w *writeTx) traceFragments(dev int64, frags []lodestone.TraceFragment, at int64) error {
	for _, f := range frags {
		if _, err := w.stmt(w.db.stmts.fragment).ExecContext(w.ctx, dev, int64(f.Offset), f.Data, at); err != nil {
			return fmt.Errorf("insert trace fragment: %w", err)
		}
		if !f.Last {
			continue
		}
		stored, err := w.storedFragments(dev)
		if err != nil {
			return err
		}
		data, err := lodestone.AssembleTrace(stored, lodestone.MaxTraceSize)
		if err != nil {
			continue
		}
		if _, err := w.stmt(w.db.stmts.trace).ExecContext(w.ctx, dev, data, at); err != nil {
			return fmt.Errorf("insert trace: %w", err)
		}
		if _, err := w.stmt(w.db.stmts.dropFragments).ExecContext(w.ctx, dev); err != nil {
			return fmt.Errorf("delete assembled fragments: %w", err)
		}
	}
	return nil
}

func (w *writeTx) storedFragments(dev int64) ([]lodestone.TraceFragment, error) {
	rows, err := w.stmt(w.db.stmts.fragments).QueryContext(w.ctx, dev)
	if err != nil {
		return nil, fmt.Errorf("read trace fragments: %w", err)
	}
	defer rows.Close()
	var out []lodestone.TraceFragment
	for rows.Next() {
		var f lodestone.TraceFragment
		var off int64
		if err := rows.Scan(&off, &f.Data); err != nil {
			return nil, fmt.Errorf("scan trace fragment: %w", err)
		}
		f.Offset = uint64(off)
		out = append(out, f)
	}
	return out, rows.Err()
}

// refused marks an error that the data caused (a constraint, a value too big or of the wrong type) as EINVALID,
// so that ingest reports it instead of answering 503: retrying the same data cannot succeed. Ingest validates
// client data before it gets here; this is the backstop for anything that validation misses.
func refused(err error) error {
	if code, _, ok := sqliteCode(err); ok && (code == sqlite3.CONSTRAINT || code == sqlite3.TOOBIG ||
		code == sqlite3.MISMATCH) {
		return errors.Join(lodestone.Errorf(lodestone.EINVALID, "the database refused the data as invalid"), err)
	}
	return err
}

func nanToNull(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
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
