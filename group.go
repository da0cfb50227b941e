package lodestone

import (
	"context"
	"time"
)

// Group is a named set of devices: ferrite's device groups. Campaigns can target one.
type Group struct {
	ID          int64
	Name        string
	Description *string
	DeviceCount int // members, filled by reads
	CreatedAt   time.Time
}

// GroupUpdate changes a group; nil fields are kept.
type GroupUpdate struct {
	Name        *string
	Description *string
}

// GroupService keeps groups and their members. Members are listed with FindDevices and DeviceFilter.GroupID.
type GroupService interface {
	// CreateGroup stores g and sets its ID; a taken name is an ECONFLICT error.
	CreateGroup(ctx context.Context, g *Group) error
	// FindGroup returns the group with the given id, or an ENOTFOUND error.
	FindGroup(ctx context.Context, id int64) (*Group, error)
	// FindGroups lists every group by name.
	FindGroups(ctx context.Context) ([]*Group, error)
	// UpdateGroup changes a group and returns it; ENOTFOUND, or ECONFLICT for a taken name.
	UpdateGroup(ctx context.Context, id int64, u GroupUpdate) (*Group, error)
	// DeleteGroup removes a group and its memberships; ENOTFOUND, or ECONFLICT while a campaign that has not
	// ended targets it.
	DeleteGroup(ctx context.Context, id int64) error
	// AddGroupDevice makes the device with the given device_id a member; ENOTFOUND when the group or the device
	// does not exist, ECONFLICT when it is a member already.
	AddGroupDevice(ctx context.Context, groupID int64, deviceID string, at time.Time) error
	// RemoveGroupDevice ends a membership, or returns ENOTFOUND.
	RemoveGroupDevice(ctx context.Context, groupID int64, deviceID string) error
}

// Group errors with ferrite's messages.
var (
	ErrGroupNotFound      = Errorf(ENOTFOUND, "group not found")
	ErrGroupOrDevice      = Errorf(ENOTFOUND, "group or device not found")
	ErrAlreadyInGroup     = Errorf(ECONFLICT, "device already in group")
	ErrMembershipNotFound = Errorf(ENOTFOUND, "membership not found")
)
