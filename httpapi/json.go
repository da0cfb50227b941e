package httpapi

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// The JSON models keep ferrite-server's field names, order and formats so that its dashboard, CLI and scripts
// read lodestone unchanged. Fields after ferrite's are lodestone additions.

// timeFormat is ferrite's timestamp text: UTC, second resolution, no zone.
const timeFormat = "2006-01-02 15:04:05"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

type deviceJSON struct {
	ID              int64   `json:"id"`
	DeviceID        string  `json:"device_id"`
	FirmwareVersion string  `json:"firmware_version"`
	BuildID         uint64  `json:"build_id"`
	FirstSeen       string  `json:"first_seen"`
	LastSeen        string  `json:"last_seen"`
	DeviceKey       *int64  `json:"device_key"`
	Name            *string `json:"name"`
	Status          string  `json:"status"`
	Tags            *string `json:"tags"`
	ProvisionedBy   *string `json:"provisioned_by"`
	ProvisionedAt   *string `json:"provisioned_at"`
}

func newDeviceJSON(d *lodestone.Device) deviceJSON {
	out := deviceJSON{ID: d.ID, DeviceID: d.DeviceID, FirmwareVersion: d.FirmwareVersion, BuildID: d.BuildID,
		FirstSeen: ts(d.FirstSeen), LastSeen: ts(d.LastSeen), Name: d.Name, Status: string(d.Status), Tags: d.Tags,
		ProvisionedBy: d.ProvisionedBy}
	if d.DeviceKey != nil {
		k := int64(*d.DeviceKey)
		out.DeviceKey = &k
	}
	if d.ProvisionedAt != nil {
		s := ts(*d.ProvisionedAt)
		out.ProvisionedAt = &s
	}
	return out
}

type faultJSON struct {
	ID            int64   `json:"id"`
	DeviceRowID   int64   `json:"device_rowid"`
	DeviceID      string  `json:"device_id"`
	FaultType     uint8   `json:"fault_type"`
	PC            uint32  `json:"pc"`
	LR            uint32  `json:"lr"`
	CFSR          uint32  `json:"cfsr"`
	HFSR          uint32  `json:"hfsr"`
	MMFAR         uint32  `json:"mmfar"`
	BFAR          uint32  `json:"bfar"`
	SP            uint32  `json:"sp"`
	StackSnapshot string  `json:"stack_snapshot"` // JSON text of the 16 words, as ferrite stores it
	Symbol        *string `json:"symbol"`
	CreatedAt     string  `json:"created_at"`
	CrashGroupID  *int64  `json:"crash_group_id"`

	FaultTypeName   string                     `json:"fault_type_name"`
	Registers       map[string]uint32          `json:"registers"`
	FirmwareVersion string                     `json:"firmware_version"`
	BuildID         uint64                     `json:"build_id"`
	SymbolState     string                     `json:"symbol_state"` // pending, done or no_elf
	ELFID           *int64                     `json:"elf_id"`
	Backtrace       []lodestone.BacktraceFrame `json:"backtrace"`
	Causes          []lodestone.FaultCause     `json:"causes"`
}

var symbolStates = [...]string{lodestone.SymbolPending: "pending", lodestone.SymbolDone: "done",
	lodestone.SymbolNoELF: "no_elf"}

func newFaultJSON(f *lodestone.Fault) faultJSON {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, v := range f.Stack {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(uint64(v), 10))
	}
	sb.WriteByte(']')
	r := f.Registers
	out := faultJSON{ID: f.ID, DeviceRowID: f.DeviceRowID, DeviceID: f.DeviceID, FaultType: f.FaultType, PC: r.PC,
		LR: r.LR, CFSR: f.CFSR, HFSR: f.HFSR, MMFAR: f.MMFAR, BFAR: f.BFAR, SP: r.SP, StackSnapshot: sb.String(),
		Symbol: f.Symbol, CreatedAt: ts(f.ReceivedAt), CrashGroupID: f.CrashGroupID,
		FaultTypeName: chunk.FaultTypeName(f.FaultType),
		Registers: map[string]uint32{"r0": r.R0, "r1": r.R1, "r2": r.R2, "r3": r.R3, "r4": r.R4, "r5": r.R5,
			"r6": r.R6, "r7": r.R7, "r8": r.R8, "r9": r.R9, "r10": r.R10, "r11": r.R11, "r12": r.R12, "sp": r.SP,
			"lr": r.LR, "pc": r.PC, "xpsr": r.XPSR},
		FirmwareVersion: f.FirmwareVersion, BuildID: f.BuildID, SymbolState: "pending", ELFID: f.ELFID,
		Backtrace: f.Backtrace, Causes: f.Causes,
	}
	if int(f.SymbolState) < len(symbolStates) {
		out.SymbolState = symbolStates[f.SymbolState]
	}
	if out.Backtrace == nil {
		out.Backtrace = []lodestone.BacktraceFrame{}
	}
	if out.Causes == nil {
		out.Causes = []lodestone.FaultCause{}
	}
	return out
}

type metricJSON struct {
	ID             int64  `json:"id"`
	DeviceRowID    int64  `json:"device_rowid"`
	DeviceID       string `json:"device_id"`
	Key            string `json:"key"`
	MetricType     uint8  `json:"metric_type"`
	ValueJSON      string `json:"value_json"`
	TimestampTicks uint64 `json:"timestamp_ticks"`
	CreatedAt      string `json:"created_at"`
}

func newMetricJSON(m *lodestone.Metric) metricJSON {
	return metricJSON{ID: m.ID, DeviceRowID: m.DeviceRowID, DeviceID: m.DeviceID, Key: m.Key,
		MetricType: uint8(m.Type), ValueJSON: valueJSON(m), TimestampTicks: m.Ticks, CreatedAt: ts(m.ReceivedAt)}
}

// valueJSON renders ferrite's value_json text; the domain owns it because the event stream sends it too.
func valueJSON(m *lodestone.Metric) string { return m.ValueJSON() }

type rebootJSON struct {
	ID                 int64  `json:"id"`
	DeviceRowID        int64  `json:"device_rowid"`
	DeviceID           string `json:"device_id"`
	Reason             uint8  `json:"reason"`
	ReasonName         string `json:"reason_name"`
	Extra              uint8  `json:"extra"`
	BootSequence       uint32 `json:"boot_sequence"`
	UptimeBeforeReboot uint32 `json:"uptime_before_reboot"`
	CreatedAt          string `json:"created_at"`
}

func newRebootJSON(r *lodestone.Reboot) rebootJSON {
	return rebootJSON{ID: r.ID, DeviceRowID: r.DeviceRowID, DeviceID: r.DeviceID, Reason: r.Reason,
		ReasonName: chunk.RebootReasonName(r.Reason),
		Extra:      r.Extra, BootSequence: r.BootSequence, UptimeBeforeReboot: r.UptimeBeforeReboot,
		CreatedAt: ts(r.ReceivedAt)}
}

type heartbeatJSON struct {
	ID           int64  `json:"id"`
	DeviceRowID  int64  `json:"device_rowid"`
	DeviceID     string `json:"device_id"`
	UptimeTicks  uint64 `json:"uptime_ticks"`
	FreeStack    uint32 `json:"free_stack_bytes"`
	MetricsCount uint32 `json:"metrics_count"`
	FramesLost   uint32 `json:"frames_lost"`
	DeviceKey    uint32 `json:"device_key"`
	CreatedAt    string `json:"created_at"`
}

func newHeartbeatJSON(h *lodestone.Heartbeat) heartbeatJSON {
	return heartbeatJSON{ID: h.ID, DeviceRowID: h.DeviceRowID, DeviceID: h.DeviceID, UptimeTicks: h.UptimeTicks,
		FreeStack: h.FreeStack, MetricsCount: h.MetricsCount, FramesLost: h.FramesLost, DeviceKey: h.DeviceKey,
		CreatedAt: ts(h.ReceivedAt)}
}

type traceJSON struct {
	ID          int64  `json:"id"`
	DeviceRowID int64  `json:"device_rowid"`
	DeviceID    string `json:"device_id"`
	Size        int    `json:"size"`
	Data        string `json:"data_base64"`
	CreatedAt   string `json:"created_at"`
}

func newTraceJSON(t *lodestone.Trace) traceJSON {
	return traceJSON{ID: t.ID, DeviceRowID: t.DeviceRowID, DeviceID: t.DeviceID, Size: len(t.Data),
		Data: base64.StdEncoding.EncodeToString(t.Data), CreatedAt: ts(t.ReceivedAt)}
}
