package sqlite

import (
	"database/sql"
	"encoding/json"

	"github.com/lodestone-fleet/lodestone"
)

// faultColumns are the columns scanFault reads, over faults x joined to devices d.
const faultColumns = `x.id, x.device_id, d.device_id, x.fault_type, x.r0, x.r1, x.r2, x.r3, x.r12,
	x.lr, x.pc, x.xpsr, x.r4, x.r5, x.r6, x.r7, x.r8, x.r9, x.r10, x.r11, x.sp, x.stack, x.cfsr, x.hfsr,
	x.mmfar, x.bfar, x.symbol, x.crash_group_id, x.received_at, x.firmware_version, x.build_id, x.sym_state,
	x.elf_id, x.backtrace, x.causes`

func scanFault(rows scanner) (*lodestone.Fault, error) {
	var v lodestone.Fault
	r := &v.Registers
	var stack []byte
	var symbol, fw, bt, causes sql.NullString
	var group, build, elf sql.NullInt64
	var at int64
	if err := rows.Scan(&v.ID, &v.DeviceRowID, &v.DeviceID, &v.FaultType, &r.R0, &r.R1, &r.R2, &r.R3, &r.R12,
		&r.LR, &r.PC, &r.XPSR, &r.R4, &r.R5, &r.R6, &r.R7, &r.R8, &r.R9, &r.R10, &r.R11, &r.SP, &stack, &v.CFSR,
		&v.HFSR, &v.MMFAR, &v.BFAR, &symbol, &group, &at, &fw, &build, &v.SymbolState, &elf, &bt,
		&causes); err != nil {
		return nil, err
	}
	v.Stack = unpackStack(stack)
	v.Symbol = nullString(symbol)
	if group.Valid {
		v.CrashGroupID = &group.Int64
	}
	if elf.Valid {
		v.ELFID = &elf.Int64
	}
	v.ReceivedAt = fromMS(at)
	v.FirmwareVersion, v.BuildID = fw.String, uint64(build.Int64)
	if bt.Valid {
		if err := json.Unmarshal([]byte(bt.String), &v.Backtrace); err != nil {
			return nil, err
		}
	}
	if causes.Valid {
		if err := json.Unmarshal([]byte(causes.String), &v.Causes); err != nil {
			return nil, err
		}
	}
	return &v, nil
}
