package lodestone

import (
	"context"
	"time"
)

// DDI action states. An action is one deployment offered to a hawkBit DDI controller (SWUpdate, RAUC's hawkBit
// updater, Zephyr's client): one per OTA target assignment, so that a target set again, or restored by a
// campaign's rollback, is a new action the controller installs again.
const (
	DDIOpen      = "open"      // offered; the controller may fetch and install it
	DDICanceling = "canceling" // its target changed after the controller fetched it: a cancelAction is pending
	DDICanceled  = "canceled"  // the controller confirmed the cancel, or never fetched it before the target changed
	DDIClosed    = "closed"    // the controller finished it; Result says how
	DDIRejected  = "rejected"  // the controller refused to cancel it; it is no longer offered either way
)

// DDIAction is one deployment of an artifact to a DDI controller (a lodestone device).
type DDIAction struct {
	ID              int64
	DeviceID        string
	TargetID        int64     // the OTA target row it came from
	TargetCreatedAt time.Time // and that row's assignment time: a new assignment is a new action
	FirmwareID      int64
	CampaignID      *int64
	Version         string
	Status          string // DDIOpen, DDICanceling, DDICanceled, DDIClosed, DDIRejected
	Result          string // for DDIClosed: "success" or "failure"
	Execution       string // the controller's last reported execution state
	Detail          string // and its last details, joined
	RetrievedAt     *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// DDIFeedback is what a controller reports on an action, already validated and reduced to one line of detail.
type DDIFeedback struct {
	Execution string // closed, proceeding, canceled, scheduled, rejected, resumed, downloaded, download
	Finished  string // success, failure or none
	Detail    string
}

// BlobHashes are the other digests of a blob that DDI clients check, in lowercase hex, and the kind of image its
// first bytes show ("swu", "raucb" or ""), computed once per blob.
type BlobHashes struct {
	MD5, SHA1, Kind string
}

// DDIStore keeps the DDI actions of controllers, the extra hashes DDI clients check, and the attributes devices
// report about themselves.
type DDIStore interface {
	// SyncDDIAction reconciles a controller's actions with its OTA target, in one transaction: an open action
	// whose assignment is gone becomes canceling (canceled when it was never fetched), and a target that names an
	// artifact, and whose from_version, if any, is the device's recorded version, gets an open action when its
	// assignment has none. It returns the action to offer and the one awaiting a cancel, either nil; while a
	// cancel is pending nothing new is offered.
	SyncDDIAction(ctx context.Context, deviceID string, now time.Time) (offer, cancel *DDIAction, err error)
	// FindDDIActions lists the device's actions, newest first, at most limit.
	FindDDIActions(ctx context.Context, deviceID string, limit int) ([]*DDIAction, error)
	// FindDDIAction returns the device's action id, or ENOTFOUND (also for another device's action).
	FindDDIAction(ctx context.Context, deviceID string, id int64) (*DDIAction, error)
	// RetrieveDDIAction records that the controller fetched the action (first time only).
	RetrieveDDIAction(ctx context.Context, deviceID string, id int64, now time.Time) error
	// UpdateDDIAction stores an action's new status, result and feedback.
	UpdateDDIAction(ctx context.Context, a *DDIAction) error
	// CurrentDDIAction reports whether the action still belongs to the device's current OTA target assignment,
	// so that its feedback may move the campaign that set the target.
	CurrentDDIAction(ctx context.Context, a *DDIAction) (bool, error)

	// BlobHashes returns what is recorded for the blob, or ENOTFOUND.
	BlobHashes(ctx context.Context, sha256 string) (BlobHashes, error)
	// SaveBlobHashes records them; saving the same blob again is a no-op.
	SaveBlobHashes(ctx context.Context, sha256 string, h BlobHashes) error

	// SetDeviceAttributes changes a device's attributes: mode "merge" adds and overwrites, "replace" drops those
	// not given, "remove" deletes the names given.
	SetDeviceAttributes(ctx context.Context, deviceID, mode string, attrs map[string]string, now time.Time) error
	// DeviceAttributes returns a device's attributes (empty when it has none).
	DeviceAttributes(ctx context.Context, deviceID string) (map[string]string, error)
}
