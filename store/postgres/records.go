package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

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

func (r *records) add(b *lodestone.DeviceBatch, dev int64, keys map[string]int64) {
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
		for i := range b.Metrics {
			m := &b.Metrics[i]
			key := keys[m.Key]
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

// queue adds one statement per table that has records to batch, and their descriptions (for errors) to what.
func (r *records) queue(batch *pgx.Batch, what []string) []string {
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
	return what
}

// sendBatch runs batch on q (a transaction, or the pool for an implicit transaction of its own) and reads one
// result per entry of what, which names each statement for errors.
func sendBatch(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, batch *pgx.Batch, what []string) error {
	if len(what) == 0 {
		return nil
	}
	br := q.SendBatch(ctx, batch)
	for _, w := range what {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("postgres: %s: %w", w, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: write telemetry: %w", err)
	}
	return nil
}
