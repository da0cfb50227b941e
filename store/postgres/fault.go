package postgres

import (
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// faultColumns are the columns scanFault reads, over faults x joined to devices d.
const faultColumns = `x.id, x.device_id, d.device_id, x.fault_type, x.r0, x.r1, x.r2, x.r3, x.r12,
	x.lr, x.pc, x.xpsr, x.r4, x.r5, x.r6, x.r7, x.r8, x.r9, x.r10, x.r11, x.sp, x.stack, x.cfsr, x.hfsr,
	x.mmfar, x.bfar, x.symbol, x.crash_group_id, x.received_at, x.firmware_version, x.build_id, x.sym_state,
	x.elf_id, x.backtrace, x.causes`

func scanFault(rows pgx.Row) (*lodestone.Fault, error) {
	var v lodestone.Fault
	var reg [22]int64
	var stack []byte
	var at int64
	var typ, state int16
	var fw, bt, causes *string
	var build *int64
	if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &typ, &reg[0], &reg[1], &reg[2], &reg[3],
		&reg[4], &reg[5], &reg[6], &reg[7], &reg[8], &reg[9], &reg[10], &reg[11], &reg[12], &reg[13], &reg[14],
		&reg[15], &reg[16], &stack, &reg[17], &reg[18], &reg[19], &reg[20], &v.Symbol, &v.CrashGroupID,
		&at, &fw, &build, &state, &v.ELFID, &bt, &causes); err != nil {
		return nil, err
	}
	r := &v.Registers
	v.FaultType = uint8(typ)
	for i, dst := range []*uint32{&r.R0, &r.R1, &r.R2, &r.R3, &r.R12, &r.LR, &r.PC, &r.XPSR, &r.R4, &r.R5,
		&r.R6, &r.R7, &r.R8, &r.R9, &r.R10, &r.R11, &r.SP, &v.CFSR, &v.HFSR, &v.MMFAR, &v.BFAR} {
		*dst = uint32(reg[i])
	}
	v.Stack = unpackStack(stack)
	v.ReceivedAt = fromMS(at)
	v.SymbolState = lodestone.SymbolState(state)
	if fw != nil {
		v.FirmwareVersion = *fw
	}
	if build != nil {
		v.BuildID = uint64(*build)
	}
	if bt != nil {
		if err := json.Unmarshal([]byte(*bt), &v.Backtrace); err != nil {
			return nil, err
		}
	}
	if causes != nil {
		if err := json.Unmarshal([]byte(*causes), &v.Causes); err != nil {
			return nil, err
		}
	}
	return &v, nil
}
