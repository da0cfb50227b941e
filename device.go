// Package lodestone holds the domain types and the interfaces that the storage backends, the ingest pipeline and
// the HTTP API share. It imports only the standard library.
package lodestone

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DeviceStatus is the lifecycle state of a device as the fleet sees it.
type DeviceStatus string

// Device statuses. The names are ferrite-server's, so its clients keep working.
const (
	StatusUnknown     DeviceStatus = "unknown"
	StatusProvisioned DeviceStatus = "provisioned"
	StatusOnline      DeviceStatus = "online"
	StatusOffline     DeviceStatus = "offline"
)

// LastSeenSlack is how far a device's stored last contact may trail its newest one before a write moves it, on
// every backend. A device that posts several times a second would otherwise rewrite its row, its last_seen
// indexes and its stability hour in every transaction; a contact that says something new (other firmware, back
// from offline) is always written.
const LastSeenSlack = time.Second

// Device is one device of the fleet, created on its first contact.
type Device struct {
	ID              int64 // row id; stable for the life of the device
	DeviceID        string
	FirmwareVersion string
	BuildID         uint64
	Status          DeviceStatus
	FirstSeen       time.Time
	LastSeen        time.Time

	// Provisioning fields; set by registration (a later feature) and nil until then.
	DeviceKey     *uint32
	Name          *string
	Tags          *string
	ProvisionedBy *string
	ProvisionedAt *time.Time
}

// DeviceSort names what a device list is ordered by. Every order ends with the row id, so paging is stable.
type DeviceSort string

// Device orders. Text orders compare bytes on every backend; devices without a name sort after named ones.
const (
	SortLastSeen  DeviceSort = "last_seen" // the default
	SortFirstSeen DeviceSort = "first_seen"
	SortDeviceID  DeviceSort = "device_id"
	SortName      DeviceSort = "name"
	SortFirmware  DeviceSort = "firmware_version"
	SortStatus    DeviceSort = "status"
	SortID        DeviceSort = "id"
)

// DeviceSorts lists the valid orders.
var DeviceSorts = []DeviceSort{SortLastSeen, SortFirstSeen, SortDeviceID, SortName, SortFirmware, SortStatus, SortID}

// DeviceFilter selects devices for listing. The zero value lists everything, most recently seen first.
type DeviceFilter struct {
	Status          DeviceStatus // empty: any
	GroupID         int64        // 0: any; otherwise only members of this group
	Tag             string       // empty: any; otherwise devices carrying this tag (see SplitTags)
	FirmwareVersion string       // empty: any; otherwise exactly this version
	Search          string       // empty: any; otherwise a case-insensitive substring of device_id or name
	Sort            DeviceSort   // empty: SortLastSeen
	Ascending       bool         // the zero value sorts descending
	Limit           int          // 0: backend default
	Offset          int
}

// DeviceKeyID is the device_id ferrite gives a device registered by key alone: the key as 8 uppercase hex digits.
func DeviceKeyID(key uint32) string { return fmt.Sprintf("%08X", key) }

// SplitTags reads ferrite's free-text tags, a JSON array of strings or a comma-separated list, into distinct
// trimmed tags in their order.
func SplitTags(s string) []string {
	s = strings.Trim(strings.TrimSpace(s), "[]")
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.Trim(strings.TrimSpace(t), `"`); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// DeviceRegistration provisions a device: ferrite's POST /devices/register.
type DeviceRegistration struct {
	// DeviceID names the device; empty means DeviceKeyID(Key), as ferrite names registered devices. Naming the
	// device_id a device reports in its DeviceInfo links the key to that device (ferrite cannot).
	DeviceID      string
	Key           uint32
	Name          *string // nil keeps the stored value
	Tags          *string // nil keeps the stored value
	ProvisionedBy *string // nil keeps the stored value
	At            time.Time
}

// RegisterResult is the outcome of one registration of a bulk request.
type RegisterResult struct {
	Device *Device // nil when Err is set
	Err    error
}

// DeviceUpdate changes a device's operator-set fields; nil fields are kept.
type DeviceUpdate struct {
	Name *string
	Tags *string
}

// DeviceRegistry provisions, edits and deletes devices. Ingest creates devices too (on first contact).
type DeviceRegistry interface {
	// RegisterDevices registers each device in one transaction. A registration that fails (a key held by another
	// device, a bad id) is reported in its result and the others are stored; the error is for the transaction.
	// A new device is provisioned; an existing one keeps its status unless it was unknown.
	RegisterDevices(ctx context.Context, regs []DeviceRegistration) ([]RegisterResult, error)
	// UpdateDevice changes the name or tags of the device with the given device_id, or returns ENOTFOUND.
	UpdateDevice(ctx context.Context, deviceID string, u DeviceUpdate) (*Device, error)
	// DeleteDevice removes the device with the given device_id and everything recorded about it: telemetry,
	// group memberships, its OTA target and its device keys. It returns ENOTFOUND when there is none.
	DeleteDevice(ctx context.Context, deviceID string) error
	// ImportDevice stores d with the times, status and fields given, as another server recorded them, and sets
	// its ID. An existing device with the same device_id is merged: the earlier first contact, the later last
	// contact (whose firmware and status win), and stored name, tags and key before imported ones.
	ImportDevice(ctx context.Context, d *Device) error
	// LinkDeviceKey makes key name the device deviceID when a post shows they are one device: deviceID reported
	// a heartbeat carrying key. It happens only when deviceID holds no key yet and the key's holder is the
	// placeholder a registration by key alone created (named DeviceKeyID(key)) that has never posted anything
	// itself: the key, name, tags, provisioning, groups, device keys and OTA target move to deviceID and the
	// placeholder is deleted. It reports whether it linked; anything else is left as it is.
	LinkDeviceKey(ctx context.Context, deviceID string, key uint32) (bool, error)
}

// DeviceService reads devices.
type DeviceService interface {
	// FindDeviceByID returns the device whose device_id is id, or an ENOTFOUND error.
	FindDeviceByID(ctx context.Context, id string) (*Device, error)
	// FindDeviceByKey returns the device provisioned with the given key, or an ENOTFOUND error.
	FindDeviceByKey(ctx context.Context, key uint32) (*Device, error)
	// FindDevices lists devices ordered by last contact, newest first, with the row id as tie-breaker.
	FindDevices(ctx context.Context, filter DeviceFilter) ([]*Device, error)
	// MarkOffline sets every online device last seen before the cutoff to offline and returns how many changed.
	MarkOffline(ctx context.Context, cutoff time.Time) (int, error)
}

// OfflineMarker is MarkOffline naming the devices it changed, so that the offline sweep can publish a
// device_offline event for each.
type OfflineMarker interface {
	MarkOfflineDevices(ctx context.Context, cutoff time.Time) ([]string, error)
}
