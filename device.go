// Package lodestone holds the domain types and the interfaces that the storage backends, the ingest pipeline and
// the HTTP API share. It imports only the standard library.
package lodestone

import (
	"context"
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

// DeviceFilter selects devices for listing. The zero value lists everything, most recently seen first.
type DeviceFilter struct {
	Status DeviceStatus // empty: any
	Limit  int          // 0: backend default
	Offset int
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
