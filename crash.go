package lodestone

import (
	"context"
	"strings"
	"time"
)

// ELF is a firmware ELF file with its debug information, uploaded so that faults of that firmware can be
// symbolicated. The file itself is a blob.
type ELF struct {
	ID        int64
	Version   string // the firmware version it was uploaded for
	BuildID   string // GNU build id (.note.gnu.build-id) as lowercase hex; "" when the ELF has none
	BuildID64 uint64 // the first 8 bytes of the build id, as a device reports it in DeviceInfo; 0 without one
	Blob      BlobRef
	Filename  string
	CreatedAt time.Time
}

// ELFService keeps the index of uploaded ELF files.
type ELFService interface {
	// CreateELF stores e, setting ID and CreatedAt, and queues for symbolication again every fault of its
	// firmware (same version or same build id) that is still waiting for symbols.
	CreateELF(ctx context.Context, e *ELF) error
	// FindELFByID returns an ELF or an ENOTFOUND error.
	FindELFByID(ctx context.Context, id int64) (*ELF, error)
	// FindELFs lists ELFs, newest first.
	FindELFs(ctx context.Context, limit, offset int) ([]*ELF, error)
	// MatchELF returns the ELF of a firmware: the one whose build id matches buildID when buildID is not 0, else
	// the newest uploaded under version. It returns an ENOTFOUND error when neither exists.
	MatchELF(ctx context.Context, version string, buildID uint64) (*ELF, error)
	// DeleteELF removes an ELF and reports whether any other ELF still uses its blob.
	DeleteELF(ctx context.Context, id int64) (deleted *ELF, blobShared bool, err error)
}

// SymbolState says where a fault stands in symbolication.
type SymbolState uint8

// Symbol states.
const (
	SymbolPending SymbolState = 0 // not looked at yet (or queued again because its ELF arrived)
	SymbolDone    SymbolState = 1 // resolved against an ELF
	SymbolNoELF   SymbolState = 2 // no ELF for its firmware yet; grouped by fault type and PC until one arrives
)

// SourceFrame is one function of an inline chain: the function, file and line an address maps to.
type SourceFrame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Inlined  bool   `json:"inlined"` // inlined into the next frame of the chain
}

// BacktraceFrame is one entry of a fault's backtrace, innermost call first.
type BacktraceFrame struct {
	Address uint32        `json:"address"`
	Method  string        `json:"method"` // pc, lr, cfi or scan: how the frame was found
	Frames  []SourceFrame `json:"frames"` // the inline chain at Address, innermost first
}

// FaultCause is one cause decoded from a fault's status registers.
type FaultCause struct {
	Name         string `json:"name"`
	Register     string `json:"register"`
	Text         string `json:"text"`
	Address      uint32 `json:"address,omitempty"`
	AddressValid bool   `json:"address_valid,omitempty"`
}

// Symbolication is what the symbolication workers learnt about one fault.
type Symbolication struct {
	FaultID   int64
	ELFID     int64 // 0 when no ELF matched: the fault waits for late symbols
	Symbol    *string
	Backtrace []BacktraceFrame
	Causes    []FaultCause
	Signature string  // the crash group key
	Title     *string // the group's title if this fault creates it
	// LegacySignature is the key an older lodestone gave this crash when it differs from Signature (keys once
	// covered three frames), else "". When no group has Signature yet but one has LegacySignature, the store
	// makes Signature lead to that group (as a merge does), so an issue filed under the old key keeps its faults.
	LegacySignature string
}

// CrashState is the triage state of a crash group.
type CrashState string

// Crash group states.
const (
	CrashOpen     CrashState = "open"
	CrashResolved CrashState = "resolved"
	CrashMuted    CrashState = "muted"
	CrashMerged   CrashState = "merged" // folded into another group; its signature now leads there
)

// CrashGroup is a crash issue: the faults that share a signature.
type CrashGroup struct {
	ID               int64
	Signature        string
	PC               uint32
	FaultType        uint8
	Title            *string
	State            CrashState
	FirstSeen        time.Time
	LastSeen         time.Time
	Occurrences      int64
	AffectedDevices  int64
	FirmwareVersions []string // of its faults, in no particular order
	Regression       bool     // re-opened because it happened again on newer firmware after being resolved
	ResolvedVersion  string   // the newest firmware seen when it was resolved
	MergedInto       *int64
}

// CrashRegression is a resolved crash group that happened again on newer firmware and was re-opened.
type CrashRegression struct {
	Group           *CrashGroup
	FaultID         int64
	DeviceID        string
	FirmwareVersion string
}

// CrashFilter selects crash groups. Merged groups are listed only when asked for by state.
type CrashFilter struct {
	State  CrashState // empty: every state but merged
	Limit  int
	Offset int
}

// CrashService stores symbolication results and the crash groups built from them.
type CrashService interface {
	// PendingFaults returns up to limit faults in state SymbolPending, oldest first, with the firmware their
	// device ran when they were stored.
	PendingFaults(ctx context.Context, limit int) ([]*Fault, error)
	// ClaimFaults is PendingFaults for a worker: it skips faults that another worker claimed less than lease ago
	// and claims the ones it returns for lease, so workers on replicas that share the store split the faults
	// instead of each resolving all of them. Saving a fault's result ends its claim.
	ClaimFaults(ctx context.Context, limit int, lease time.Duration) ([]*Fault, error)
	// SaveSymbolications stores results and files each fault in the group of its signature, creating groups as
	// needed, in one transaction. It returns the resolved groups that this re-opened as regressions.
	SaveSymbolications(ctx context.Context, results []Symbolication) ([]CrashRegression, error)
	// FindCrashGroups lists groups by occurrence count, most first, and returns the total the filter matches.
	FindCrashGroups(ctx context.Context, f CrashFilter) ([]*CrashGroup, int, error)
	// FindCrashGroupByID returns a group or an ENOTFOUND error.
	FindCrashGroupByID(ctx context.Context, id int64) (*CrashGroup, error)
	// FindCrashOccurrences lists the faults of a group, newest first.
	FindCrashOccurrences(ctx context.Context, groupID int64, f TelemetryFilter) ([]*Fault, error)
	// SetCrashGroupState changes a group's state (open, resolved or muted). Resolving records the newest firmware
	// version among its faults, so that a fault on newer firmware re-opens it.
	SetCrashGroupState(ctx context.Context, id int64, state CrashState) (*CrashGroup, error)
	// MergeCrashGroups moves every fault of group from into group into, marks from as merged so that its
	// signature leads to into from now on, and returns the updated target.
	MergeCrashGroups(ctx context.Context, from, into int64) (*CrashGroup, error)
}

// CompareVersions orders firmware version strings naturally: runs of digits compare as numbers, everything else
// as text, so 1.10.0 > 1.9.2 and 2.0.0-rc2 > 2.0.0-rc1. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, rb := versionRun(a), versionRun(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func versionRun(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func compareRun(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}
