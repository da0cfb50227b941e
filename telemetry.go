package lodestone

import (
	"context"
	"time"
)

// MetricType is the kind of a metric sample, numbered as on the ferrite wire.
type MetricType uint8

// Metric types.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// Metric is one metric sample reported by a device. Counters and gauges use Value; histograms carry Min in Value
// and Max in Max. A type the server does not know keeps its eight wire bytes in Raw.
type Metric struct {
	ID          int64
	DeviceRowID int64
	DeviceID    string
	Key         string
	Type        MetricType
	Value       float64
	Max         float64
	Raw         []byte // only for unknown types
	Ticks       uint64 // device clock at sampling time
	ReceivedAt  time.Time
}

// Fault is a crash dump: the Cortex-M exception frame, the callee-saved registers, the fault status registers and
// a snapshot of the top of the stack, exactly as the device sent them.
type Fault struct {
	ID          int64
	DeviceRowID int64
	DeviceID    string
	FaultType   uint8 // 0 HardFault, 1 MemFault, 2 BusFault, 3 UsageFault
	Registers   Registers
	Stack       [16]uint32
	CFSR        uint32
	HFSR        uint32
	MMFAR       uint32
	BFAR        uint32
	ReceivedAt  time.Time

	// Filled by symbolication in the background; nil until then.
	Symbol       *string
	CrashGroupID *int64

	// The firmware the device ran when the fault was stored, from its DeviceInfo.
	FirmwareVersion string
	BuildID         uint64
	// Symbolication results; empty until the fault is symbolicated.
	SymbolState SymbolState
	ELFID       *int64
	Backtrace   []BacktraceFrame
	Causes      []FaultCause
}

// Registers holds the core registers captured at fault time.
type Registers struct {
	R0, R1, R2, R3, R12, LR, PC, XPSR uint32
	R4, R5, R6, R7, R8, R9, R10, R11  uint32
	SP                                uint32
}

// Reboot is a reboot event reported once after the device came back up.
type Reboot struct {
	ID                 int64
	DeviceRowID        int64
	DeviceID           string
	Reason             uint8
	Extra              uint8
	BootSequence       uint32
	UptimeBeforeReboot uint32
	ReceivedAt         time.Time
}

// Heartbeat closes every upload session and proves the device alive.
type Heartbeat struct {
	ID           int64
	DeviceRowID  int64
	DeviceID     string
	UptimeTicks  uint64
	FreeStack    uint32
	MetricsCount uint32
	FramesLost   uint32
	DeviceKey    uint32 // 0 when the device is not provisioned
	ReceivedAt   time.Time
}

// TraceFragment is one piece of a device trace buffer, placed by byte offset.
type TraceFragment struct {
	Offset uint64
	Data   []byte
	Last   bool
}

// Trace is a trace buffer reassembled from its fragments.
type Trace struct {
	ID          int64
	DeviceRowID int64
	DeviceID    string
	Data        []byte
	ReceivedAt  time.Time
}

// OtaRequest is a device asking whether newer firmware exists for it.
type OtaRequest struct {
	ID           int64
	DeviceRowID  int64
	DeviceID     string
	BuildID      uint64
	MaxChunkSize uint16
	OtaCapable   uint8
	ReceivedAt   time.Time
}

// DeviceInfo is what a device says about itself at the start of each session.
type DeviceInfo struct {
	FirmwareVersion string
	BuildID         uint64
}

// DeviceBatch is everything one ingest request carried for one device. Batches from many requests are written in
// one transaction (group commit); each record keeps the order it arrived in.
type DeviceBatch struct {
	DeviceID   string
	ReceivedAt time.Time
	Info       *DeviceInfo // the last DeviceInfo seen for this device in the request, if any

	Heartbeats     []Heartbeat
	Metrics        []Metric
	Faults         []Fault
	Reboots        []Reboot
	TraceFragments []TraceFragment
	OtaRequests    []OtaRequest
}

// Records counts the records in the batch, for batching decisions.
func (b *DeviceBatch) Records() int {
	return 1 + len(b.Heartbeats) + len(b.Metrics) + len(b.Faults) + len(b.Reboots) + len(b.TraceFragments) +
		len(b.OtaRequests)
}

// TelemetryWriter stores ingested telemetry.
type TelemetryWriter interface {
	// WriteTelemetry stores every batch in one transaction: all of it is durable when it returns nil, none of it
	// when it returns an error. Devices are created on first contact and their last contact is updated.
	WriteTelemetry(ctx context.Context, batches []*DeviceBatch) error
}

// TelemetryFilter selects telemetry records. Records are returned newest first with the row id as tie-breaker,
// so paging with Offset is stable.
type TelemetryFilter struct {
	DeviceID string    // empty: every device
	Since    time.Time // zero: unbounded; inclusive
	Until    time.Time // zero: unbounded; exclusive
	Limit    int       // 0: backend default
	Offset   int
}

// MetricFilter selects metric samples.
type MetricFilter struct {
	TelemetryFilter
	Key string // empty: every key
}

// TelemetryService reads stored telemetry.
type TelemetryService interface {
	FindFaults(ctx context.Context, filter TelemetryFilter) ([]*Fault, error)
	FindMetrics(ctx context.Context, filter MetricFilter) ([]*Metric, error)
	FindReboots(ctx context.Context, filter TelemetryFilter) ([]*Reboot, error)
	FindHeartbeats(ctx context.Context, filter TelemetryFilter) ([]*Heartbeat, error)
	FindTraces(ctx context.Context, filter TelemetryFilter) ([]*Trace, error)
	FindOtaRequests(ctx context.Context, filter TelemetryFilter) ([]*OtaRequest, error)
}

// Settings keeps small server-wide values, such as the hash of a generated admin password.
type Settings interface {
	// Setting returns the value stored under key, or an ENOTFOUND error.
	Setting(ctx context.Context, key string) (string, error)
	// SetSettingIfAbsent stores value under key unless the key exists; it reports whether it stored it.
	SetSettingIfAbsent(ctx context.Context, key, value string) (bool, error)
}

// Store is everything a storage backend provides. Every backend passes the conformance suite in store/storetest.
type Store interface {
	DeviceService
	DeviceRegistry
	GroupService
	OfflineMarker
	TelemetryWriter
	TelemetryService
	Settings
	ELFService
	CrashService
	OTAStore
	StabilityReader
	TimelineReader
	Close() error
}

// Limits applied by every backend to list queries.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ClampLimit applies the default and the maximum to a requested list size.
func ClampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultListLimit
	case n > MaxListLimit:
		return MaxListLimit
	}
	return n
}
