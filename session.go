package lodestone

import (
	"context"
	"time"
)

// Session is a signed-in console user. The cookie holds a random secret; the store keeps only its hex SHA-256,
// so a copy of the database signs no one in, and every replica sharing the store shares the sessions.
type Session struct {
	Hash      string // hex SHA-256 of the cookie secret
	UserName  string
	Role      Role
	Via       string // how the user signed in: "password" or "oidc"
	CreatedAt time.Time
	LastSeen  time.Time // the idle timeout counts from here
	ExpiresAt time.Time // the absolute timeout
}

// SessionStore keeps console sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	// FindSession returns the session with the given hash, or ENOTFOUND.
	FindSession(ctx context.Context, hash string) (*Session, error)
	// TouchSession moves a session's LastSeen forward (never back); ENOTFOUND when it is gone.
	TouchSession(ctx context.Context, hash string, at time.Time) error
	// DeleteSession ends a session (logout); ending one that is gone is not an error.
	DeleteSession(ctx context.Context, hash string) error
	// DeleteExpiredSessions removes sessions past their absolute timeout at now or idle since before idleSince,
	// and returns how many.
	DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int, error)
}

// DeviceCount is how many devices share a value (a firmware version, a status, a tag or a group's name), and
// how many of them are online.
type DeviceCount struct {
	Value           string
	GroupID         int64 // for CountByGroup
	Devices, Online int64
}

// What DeviceCounter.CountDevicesBy breaks the fleet down by.
const (
	CountByFirmware = "firmware_version"
	CountByStatus   = "status"
	CountByTag      = "tag"
	CountByGroup    = "group"
)

// DeviceCounter breaks the fleet down for the console's overview and fleet pages, in the store: the counts come
// from indexes, never from listing devices.
type DeviceCounter interface {
	// CountDevicesBy counts devices per value of by (a CountBy constant), most devices first, at most limit
	// values. Groups without members are listed with zero counts.
	CountDevicesBy(ctx context.Context, by string, limit int) ([]DeviceCount, error)
}

// GroupMembership lists the groups a device belongs to (the device page), from the membership index.
type GroupMembership interface {
	// FindDeviceGroups returns the groups of the device with the given device_id, by name; none for an unknown
	// device.
	FindDeviceGroups(ctx context.Context, deviceID string) ([]*Group, error)
}
