package lodestone

import (
	"context"
	"time"
)

// Firmware is an uploaded firmware image. Its bytes are a blob (SHA256, Size); the row carries what devices and
// operators need to know about it. An artifact is immutable: nothing changes its bytes, version or name once it
// is stored. Filename is unique: ferrite names uploads <version>-b<build>-<sha8>.bin; an upload through the ESP32
// FUOTA listener is named by its update file path (FUOTAPath), or, when a newer upload takes over that path,
// by the path with a suffix.
type Firmware struct {
	ID        int64
	Version   string
	BuildID   uint64
	SHA256    string
	Size      int64
	Filename  string
	Signer    *string
	Notes     string
	CreatedAt time.Time

	Origin     string     // OriginOperator or OriginFUOTA; empty is OriginOperator
	FUOTAPath  *string    // the update file path a FUOTA upload was PUT under
	ApprovedAt *time.Time // when a provisioner approved a FUOTA upload for signing
	ApprovedBy string
}

// Origins of artifacts and targets: who made them. The FUOTA login (one pair shared by an ESP32 fleet, built into
// its firmware) may change only what it made.
const (
	OriginOperator = "operator" // /ota routes (users, API tokens), campaigns, imports
	OriginFUOTA    = "fuota"    // the FUOTA listener's PUT /files and PUT /devices
)

// Signable reports whether the artifact may be signed with the server's OTA signing key: anything an operator
// uploaded, and a FUOTA upload once a provisioner approved it.
func (f *Firmware) Signable() bool { return f.Origin != OriginFUOTA || f.ApprovedAt != nil }

// OTATarget is the update one device should install. A device is offered it while it runs another version; when
// FromVersion is set (the FUOTA contract's app_ver), only while it runs exactly FromVersion.
type OTATarget struct {
	ID            int64
	DeviceID      string
	TargetVersion string
	TargetBuildID uint64
	FirmwareURL   *string
	FirmwareID    *int64 // the artifact to install; nil for a target that only names a version or URL
	FromVersion   *string
	CampaignID    *int64 // the campaign that set this target, if any
	Origin        string // OriginOperator or OriginFUOTA; empty is OriginOperator
	CreatedAt     time.Time
}

// Offers reports whether a device running version/build should be told about the target.
func (t *OTATarget) Offers(version string, build uint64) bool {
	if t.FromVersion != nil {
		return version == *t.FromVersion
	}
	if t.TargetBuildID != 0 && build != 0 {
		return build != t.TargetBuildID
	}
	return version != t.TargetVersion
}

// OTA progress states a device reports, and the states of a device in a campaign.
const (
	OTAPending     = "pending"     // in the campaign, not offered yet
	OTAOffered     = "offered"     // its target is set; it has not started downloading
	OTADownloading = "downloading" // it said it started
	OTAInstalled   = "installed"   // confirmed by its DeviceInfo (or reported)
	OTAFailed      = "failed"      // it said so, or it timed out
)

// Campaign states.
const (
	CampaignCreated    = "created"
	CampaignActive     = "active"
	CampaignPaused     = "paused"
	CampaignHalted     = "halted" // stopped by its health gate; resumable after review
	CampaignCompleted  = "completed"
	CampaignAborted    = "aborted"
	CampaignRolledBack = "rolled_back"
)

// Campaign rolls one firmware out to a set of devices in waves. Waves are cumulative percentages of the campaign's
// devices (for example 5, 25, 100: a canary of 5%, then up to 25%, then everyone). A wave advances only after
// SoakTime has passed since it started, its devices have settled, and the health gate passed.
type Campaign struct {
	ID               int64
	Name             string
	FirmwareID       int64
	TargetVersion    string
	Strategy         string // ferrite's: immediate, canary, scheduled
	TargetGroupID    *int64
	TargetTags       *string
	RolloutPercent   int64
	FailureThreshold float64 // percent of a wave's devices that may fail before the campaign halts
	Waves            []int   // cumulative percentages, ascending, the last one 100
	SoakTime         time.Duration
	HealthRatio      float64       // new-firmware crash or reboot rate above ratio × old rate halts; 0 disables
	MinDeviceHours   float64       // device-hours on the new firmware before the gate may pass a wave
	OfferTimeout     time.Duration // offered → failed when a device never starts
	InstallTimeout   time.Duration // downloading → failed when a device never confirms
	Status           string
	Wave             int // index of the wave offered last; -1 before activation
	WaveStartedAt    *time.Time
	StartedAt        *time.Time
	HaltReason       string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// CampaignDevice is one device's state in a campaign. Prev* is the target the device had before the campaign set
// its own, so that a rollback restores exactly that.
type CampaignDevice struct {
	ID          int64
	CampaignID  int64
	DeviceID    string
	Status      string
	Wave        int // -1 while pending
	Reason      string
	OfferedAt   *time.Time
	InstalledAt *time.Time
	UpdatedAt   time.Time
	PrevTarget  *OTATarget
}

// CampaignCounts counts a campaign's devices by state.
type CampaignCounts struct {
	Pending, Offered, Downloading, Installed, Failed int
}

// Total is the number of devices in the campaign.
func (c CampaignCounts) Total() int {
	return c.Pending + c.Offered + c.Downloading + c.Installed + c.Failed
}

// CampaignHealth compares the campaign's devices on the new firmware with those still on the old one over the
// same period: faults and unexpected reboots per device-hour. Its figures are the stability report's
// (VersionStability) for the campaign's devices: New is the campaign's version, Old every other version.
type CampaignHealth struct {
	NewDevices, OldDevices int
	NewHours, OldHours     float64
	NewFaults, OldFaults   int
	NewReboots, OldReboots int
}

// OTAReport is a device's word on an update.
type OTAReport struct {
	DeviceID string
	Status   string // downloading, installed or failed
	Reason   string
	Version  string // what it runs now, when it says
	BuildID  uint64
}

// FirmwareService keeps firmware artifacts. Their bytes live in a BlobStore.
type FirmwareService interface {
	// CreateFirmware stores f and sets its ID and CreatedAt; an existing Filename is an ECONFLICT error.
	CreateFirmware(ctx context.Context, f *Firmware) error
	// PutFUOTAFirmware stores a FUOTA upload (PUT /files) of f.Filename, the update file path, as a new artifact
	// of origin fuota; the path then names it. The store picks a unique Filename when older uploads hold the path,
	// and points FUOTA's own targets at the newest upload; nothing else changes. Bytes, version and build equal
	// to the path's newest upload are that upload (created=false). A path that names another origin's artifact,
	// and one that is an older upload's Filename, are ECONFLICT errors.
	PutFUOTAFirmware(ctx context.Context, f *Firmware) (created bool, err error)
	FindFirmwareByID(ctx context.Context, id int64) (*Firmware, error)
	FindFirmwareByFilename(ctx context.Context, name string) (*Firmware, error)
	// FindFirmwareByFUOTAPath returns the newest FUOTA upload under an update file path.
	FindFirmwareByFUOTAPath(ctx context.Context, path string) (*Firmware, error)
	// ApproveFirmware records a provisioner's approval of an artifact for signing; approving again keeps the
	// first approval.
	ApproveFirmware(ctx context.Context, id int64, by string, at time.Time) (*Firmware, error)
	// FindFirmware lists artifacts, newest first.
	FindFirmware(ctx context.Context) ([]*Firmware, error)
	// DeleteFirmware removes an artifact; one that a campaign, a target, or a running campaign's saved target
	// uses is an ECONFLICT error.
	DeleteFirmware(ctx context.Context, id int64) (*Firmware, error)
	// FirmwareBlobInUse reports whether any artifact (or ELF file) still holds the blob, before it is deleted.
	FirmwareBlobInUse(ctx context.Context, sha256 string) (bool, error)
}

// OTATargetService keeps one target per device.
type OTATargetService interface {
	// SetTarget inserts or replaces the device's target, as an operator; CreatedAt is reset. A nil FirmwareURL
	// keeps the old one.
	SetTarget(ctx context.Context, t *OTATarget) error
	// SetFUOTATarget is SetTarget for the FUOTA listener: it writes a target of origin fuota, which must name a
	// FUOTA upload, and only over a target of origin fuota that no campaign set. A device with another target, a
	// lodestone device (one that reported or was provisioned, or has a device key) and a member of an unfinished
	// campaign are EFORBIDDEN errors.
	SetFUOTATarget(ctx context.Context, t *OTATarget) error
	FindTarget(ctx context.Context, deviceID string) (*OTATarget, error)
	// FindTargetsOf returns the targets of those of the devices that have one, by device id, in one query: the
	// ingest path asks for every device of a gateway's batch at once.
	FindTargetsOf(ctx context.Context, deviceIDs []string) (map[string]*OTATarget, error)
	// FindTargets lists targets, newest first.
	FindTargets(ctx context.Context) ([]*OTATarget, error)
	DeleteTarget(ctx context.Context, deviceID string) error
	// DeleteFUOTATarget deletes the device's target only when it is of origin fuota and no campaign set it
	// (EFORBIDDEN otherwise, ENOTFOUND when there is none).
	DeleteFUOTATarget(ctx context.Context, deviceID string) error
}

// CampaignStore keeps campaigns and their devices. Every method is one transaction; the rules (waves, gate,
// timeouts) live above it, in package ota.
type CampaignStore interface {
	// CreateCampaign stores c with its devices, all pending.
	CreateCampaign(ctx context.Context, c *Campaign, deviceIDs []string) error
	FindCampaign(ctx context.Context, id int64) (*Campaign, error)
	// FindCampaigns lists campaigns newest first; statuses, when given, filter.
	FindCampaigns(ctx context.Context, statuses ...string) ([]*Campaign, error)
	FindCampaignDevices(ctx context.Context, campaignID int64) ([]*CampaignDevice, error)
	CountCampaignDevices(ctx context.Context, campaignID int64) (CampaignCounts, error)
	// SetCampaignStatus moves a campaign from one of from to to; any other current status is an EINVALID error.
	SetCampaignStatus(ctx context.Context, id int64, from []string, to, reason string, now time.Time) (*Campaign,
		error)
	// OfferWave offers the campaign's firmware to up to n pending devices (by device id order): it saves each
	// device's current target, sets the campaign's, and records wave as the current one. It returns how many.
	OfferWave(ctx context.Context, id int64, wave, n int, now time.Time) (int, error)
	// ExpireCampaignDevices fails offered devices offered before offeredBefore and downloading ones updated
	// before downloadingBefore, with reason "timeout".
	ExpireCampaignDevices(ctx context.Context, id int64, offeredBefore, downloadingBefore, now time.Time) (int,
		error)
	// EndCampaign sets a final status and gives every offered device its saved target back, where the target is
	// still the campaign's; installed devices too when restoreInstalled. It returns how many targets changed.
	EndCampaign(ctx context.Context, id int64, from []string, to string, restoreInstalled bool,
		now time.Time) (int, error)
	// CampaignHealth measures the campaign's devices (failed ones left out) over the whole hours covering
	// [since, now), with the stability report's definitions.
	CampaignHealth(ctx context.Context, id int64, since, now time.Time) (CampaignHealth, error)
	// ReportOTA records a device's progress on the campaign that set its target, if any, and returns the
	// campaign device's new status ("" when no campaign holds it).
	ReportOTA(ctx context.Context, r OTAReport, now time.Time) (string, error)
}

// OTAStore is everything firmware updates need from storage.
type OTAStore interface {
	FirmwareService
	OTATargetService
	CampaignStore
}
