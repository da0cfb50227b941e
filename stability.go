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
	// CrashHours are the device-hours in which a fault was reported (hours are the store's hourly buckets).
	CrashHours float64
	// VsPrevious compares this version with Previous when both were observed in the range.
	VsPrevious *StabilityComparison
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

// StabilityHour is the resolution of stability figures: the store keeps them per hour, so a query's range is read
// in whole hours (From rounded down, To rounded up), and the report says which range it read.
const StabilityHour = time.Hour

// MaxStabilityRange bounds a stability query's range.
const MaxStabilityRange = 400 * 24 * time.Hour

// UnexpectedRebootReasons are the reboot reasons that mean something went wrong: watchdog, the four faults, a
// failed assertion, brownout. Power-on, software, pin, update and user resets are expected.
var UnexpectedRebootReasons = []uint8{3, 4, 5, 6, 7, 8, 10}

// StabilityComparison compares a version with its previous one, when both were observed in the range.
type StabilityComparison struct {
	Version string
	// CrashFreeHoursPctDelta is this version's crash-free percentage minus the previous one's, in points.
	CrashFreeHoursPctDelta float64
	// FaultsRatio and RebootsRatio are this version's rate over the previous one's; 0 when the previous rate is 0.
	FaultsRatio, RebootsRatio float64
}

// ValidateStabilityQuery checks a query's range.
func ValidateStabilityQuery(q StabilityQuery) error {
	switch {
	case q.From.IsZero() || q.To.IsZero():
		return Errorf(EINVALID, "stability needs a time range (from and to)")
	case !q.To.After(q.From):
		return Errorf(EINVALID, "stability range is empty: 'to' must be after 'from'")
	case q.To.Sub(q.From) > MaxStabilityRange:
		return Errorf(EINVALID, "stability range is longer than %d days", int(MaxStabilityRange.Hours()/24))
	case q.Group != "" && q.Tag != "":
		return Errorf(EINVALID, "stability takes a group or a tag, not both")
	}
	return nil
}

// StabilityRange is the range a query reads: whole hours covering [from, to).
func StabilityRange(from, to time.Time) (time.Time, time.Time) {
	f := from.UTC().Truncate(StabilityHour)
	t := to.UTC().Truncate(StabilityHour)
	if t.Before(to) {
		t = t.Add(StabilityHour)
	}
	return f, t
}

// Derive computes the rates and percentages from the totals (Devices, DeviceHours, CrashHours, Faults,
// UnexpectedReboots). It is the one definition of those figures: the report, the gate and alert rules use it.
func (v *VersionStability) Derive() {
	v.CrashFreeHoursPct, v.FaultsPer1000h, v.RebootsPer1000h = 0, 0, 0
	if v.DeviceHours <= 0 {
		return
	}
	v.CrashFreeHoursPct = 100 * max(v.DeviceHours-v.CrashHours, 0) / v.DeviceHours
	v.FaultsPer1000h = float64(v.Faults) * 1000 / v.DeviceHours
	v.RebootsPer1000h = float64(v.UnexpectedReboots) * 1000 / v.DeviceHours
}

// Compare fills VsPrevious for every version whose Previous is also in the report.
func (r *StabilityReport) Compare() {
	byVersion := make(map[string]*VersionStability, len(r.Versions))
	for i := range r.Versions {
		byVersion[r.Versions[i].Version] = &r.Versions[i]
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for i := range r.Versions {
		v := &r.Versions[i]
		p, ok := byVersion[v.Previous]
		if v.Previous == "" || !ok || p.DeviceHours <= 0 || v.DeviceHours <= 0 {
			continue
		}
		v.VsPrevious = &StabilityComparison{Version: p.Version,
			CrashFreeHoursPctDelta: v.CrashFreeHoursPct - p.CrashFreeHoursPct,
			FaultsRatio:            ratio(v.FaultsPer1000h, p.FaultsPer1000h),
			RebootsRatio:           ratio(v.RebootsPer1000h, p.RebootsPer1000h)}
	}
}

// Timeline entry kinds.
const (
	TimelineReboot   = "reboot"
	TimelineFault    = "fault"
	TimelineFirmware = "firmware"
	TimelineOTA      = "ota"
	TimelineOnline   = "online"
	TimelineOffline  = "offline"
)

// Timeline bounds.
const (
	DefaultTimelineLimit = 100
	MaxTimelineLimit     = 500
	DefaultLogWindow     = 30 * time.Second
	MaxLogWindow         = 10 * time.Minute
	DefaultLogsPerFault  = 20
	MaxLogsPerFault      = 100
)

// TimelineQuery asks for one page of a device's timeline, newest first.
type TimelineQuery struct {
	DeviceID string
	From, To time.Time // optional bounds, [From, To)
	Cursor   string    // a previous page's Next; "" for the newest page
	Limit    int
	// LogWindow is how far before and after each fault its logs are read (0: DefaultLogWindow, negative: none);
	// LogsPerFault caps them per fault.
	LogWindow    time.Duration
	LogsPerFault int
}

// TimelineEntry is one thing that happened to a device. Kind says which fields are set.
type TimelineEntry struct {
	At      time.Time
	Kind    string
	ID      int64  // the row's id within its kind (fault id, reboot id, event id)
	Summary string // one line for people
	// Reboot: the reason (name and code) and whether it was unexpected.
	Reason     string
	ReasonCode int
	Unexpected bool
	// Fault: the firmware it ran, its crash issue once known, and the logs around it.
	Version string
	IssueID *int64
	Logs    []TimelineLog
	// Firmware change: From → To. OTA: From names the campaign or DDI action, To its state, Detail the reason or
	// feedback.
	From, To, Detail string
}

// TimelineLog is a log record near a fault.
type TimelineLog struct {
	Time     time.Time
	Severity string
	Body     string
}

// TimelinePage is a page of a timeline; Next continues it ("" at the end).
type TimelinePage struct {
	Entries []TimelineEntry
	Next    string
}

// TimelineReader reads device timelines. Both backends implement it.
type TimelineReader interface {
	// DeviceTimeline returns a page of the device's timeline; an unknown device is ENOTFOUND, a bad cursor EINVALID.
	DeviceTimeline(ctx context.Context, q TimelineQuery) (TimelinePage, error)
}
