package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/ncruces/go-sqlite3"

	"github.com/lodestone-fleet/lodestone"
)

// writeStmts are prepared once on the writer connection and bound to each transaction.
type writeStmts struct {
	upsertDevice, touchByKey, metricKey                 *sql.Stmt
	metric, fault, reboot, heartbeat, otaRequest, trace *sql.Stmt
	fragment, fragments, dropFragments                  *sql.Stmt
	metrics, heartbeats                                 *sql.Stmt // rowsPerInsert rows at once
}

// rowsPerInsert rows go into one INSERT for the high-volume tables: per-statement overhead dominates
// single-row inserts.
const rowsPerInsert = 64

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
		// ferrite semantics: a heartbeat carrying a device key also marks the device provisioned with that key.
		{&s.touchByKey, `UPDATE devices SET status = 'online', last_seen = max(last_seen, ?1)
			WHERE device_key = ?2 AND id <> ?3`},
		{&s.metricKey, `INSERT INTO metric_keys (name) VALUES (?1)
			ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`},
		{&s.metric, multiRowInsert("metrics", metricCols, 1, 8)},
		{&s.metrics, multiRowInsert("metrics", metricCols, rowsPerInsert, 8)},
		{&s.heartbeats, multiRowInsert("heartbeats", heartbeatCols, rowsPerInsert, 7)},
		{&s.fault, `INSERT INTO faults (device_id, fault_type, r0, r1, r2, r3, r12, lr, pc, xpsr,
			r4, r5, r6, r7, r8, r9, r10, r11, sp, stack, cfsr, hfsr, mmfar, bfar, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.reboot, `INSERT INTO reboots (device_id, reason, extra, boot_sequence, uptime_before_reboot, received_at)
			VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.heartbeat, multiRowInsert("heartbeats", heartbeatCols, 1, 7)},
		{&s.otaRequest, `INSERT INTO ota_requests (device_id, build_id, max_chunk_size, ota_capable, received_at)
			VALUES (?, ?, ?, ?, ?)`},
		{&s.trace, `INSERT INTO traces (device_id, data, received_at) VALUES (?, ?, ?)`},
		{&s.fragment, `INSERT INTO trace_fragments (device_id, byte_offset, data, received_at) VALUES (?, ?, ?, ?)`},
		{&s.fragments, `SELECT byte_offset, data FROM trace_fragments WHERE device_id = ? ORDER BY byte_offset, id`},
		{&s.dropFragments, `DELETE FROM trace_fragments WHERE device_id = ?`},
	} {
		st, err := db.PrepareContext(ctx, p.text)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("sqlite: prepare %.40q: %w", p.text, err)
		}
		*p.dst = st
	}
	return s, nil
}

func (s *writeStmts) close() {
	for _, st := range []*sql.Stmt{s.upsertDevice, s.touchByKey, s.metricKey, s.metric, s.fault, s.reboot,
		s.heartbeat, s.otaRequest, s.trace, s.fragment, s.fragments, s.dropFragments, s.metrics, s.heartbeats} {
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
}

// batchedInsert collects rows of one table and inserts them rowsPerInsert at a time.
type batchedInsert struct {
	one, many *sql.Stmt
	width     int
	rows      []any
}

func (w *writeTx) add(b *batchedInsert, values ...any) error {
	b.rows = append(b.rows, values...)
	return w.flush(b, false)
}

// flush inserts full statements' worth of pending rows; with all set it also inserts the rest one by one.
func (w *writeTx) flush(b *batchedInsert, all bool) error {
	full := rowsPerInsert * b.width
	for len(b.rows) >= full {
		if _, err := w.stmt(b.many).ExecContext(w.ctx, b.rows[:full]...); err != nil {
			return err
		}
		b.rows = append(b.rows[:0], b.rows[full:]...)
	}
	for all && len(b.rows) > 0 {
		if _, err := w.stmt(b.one).ExecContext(w.ctx, b.rows[:b.width]...); err != nil {
			return err
		}
		b.rows = b.rows[b.width:]
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
		metrics:    batchedInsert{one: db.stmts.metric, many: db.stmts.metrics, width: 8},
		heartbeats: batchedInsert{one: db.stmts.heartbeat, many: db.stmts.heartbeats, width: 7}}
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

func (w *writeTx) writeBatch(b *lodestone.DeviceBatch) error {
	at := ms(b.ReceivedAt)
	var fw string
	var build uint64
	if b.Info != nil {
		fw, build = b.Info.FirmwareVersion, b.Info.BuildID
	}
	var dev int64
	if err := w.stmt(w.db.stmts.upsertDevice).QueryRowContext(w.ctx, b.DeviceID, fw, int64(build), at,
		b.Info != nil).Scan(&dev); err != nil {
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
	switch m.Type {
	case lodestone.MetricCounter, lodestone.MetricGauge:
		value = nanToNull(m.Value)
	case lodestone.MetricHistogram:
		value, maxV = nanToNull(m.Value), nanToNull(m.Max)
	default:
		raw = m.Raw
	}
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
