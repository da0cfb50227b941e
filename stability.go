package lodestone

import (
	"context"
	"time"
)

// StabilityQuery asks how stable each firmware version was over [From, To), optionally for one group or tag.
type StabilityQuery struct {
	From, To time.Time
	Group    string // group name; "" is the whole fleet
	Tag      string // device tag; "" is any
	Versions []string
}

// VersionStability is one firmware version's stability over a query's range. The same definitions serve the
// campaign health gate, so the gate and the report always agree.
type VersionStability struct {
	Version     string
	Devices     int     // devices observed on this version in the range
	DeviceHours float64 // hours observed (heartbeats and uptime) on this version in the range
	// CrashFreeHoursPct is the share of observed device-hours, in percent, that held no fault.
	CrashFreeHoursPct float64
	Faults            int
	FaultsPer1000h    float64
	UnexpectedReboots int
	RebootsPer1000h   float64
	RebootsByReason   map[string]int // unexpected reboots by reason name
	TopIssues         []StabilityIssue
	// Previous is the version this one is compared with (the one its devices ran before), when known.
	Previous string
}

// StabilityIssue is a crash issue seen on a version, with the devices it affected there.
type StabilityIssue struct {
	IssueID     int64
	Title       string
	Devices     int
	Occurrences int
}

// StabilityReport is every version's stability over the query's range, most device-hours first.
type StabilityReport struct {
	From, To time.Time
	Versions []VersionStability
}

// StabilityReader computes stability per firmware version. Both backends implement it.
type StabilityReader interface {
	Stability(ctx context.Context, q StabilityQuery) (StabilityReport, error)
}
