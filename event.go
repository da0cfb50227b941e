package lodestone

import (
	"context"
	"encoding/json"
	"time"
)

// Event names, as ferrite-server's SSE stream sends them (spec §2.11), plus lodestone's own.
const (
	EventHeartbeat     = "heartbeat"
	EventFault         = "fault"
	EventMetric        = "metric"
	EventReboot        = "reboot"
	EventDeviceOnline  = "device_online"
	EventDeviceOffline = "device_offline"
)

// Event is something that happened, for live subscribers (SSE, alerts, log tails). Data is the JSON body the
// event stream sends; ID is assigned by the bus so that subscribers can resume with Last-Event-ID.
type Event struct {
	ID       int64           `json:"id"`
	Type     string          `json:"type"`
	DeviceID string          `json:"device_id,omitempty"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
}

// EventPublisher publishes events. Publishing never blocks the caller on slow subscribers.
type EventPublisher interface {
	Publish(ctx context.Context, e Event) error
}

// EventDemand is implemented by publishers that can tell whether events published now would reach anyone, so
// that a producer can skip building events nobody receives. Wanted returns false only when no subscription that
// was in force before the call would receive them; it may return true when none would.
type EventDemand interface {
	Wanted(ctx context.Context) bool
}

// EventBus delivers published events to subscribers, on this replica and, on a shared backend, on every replica.
type EventBus interface {
	EventPublisher
	// Subscribe returns a channel of events published after the call, starting after afterID when afterID > 0 and
	// the bus still holds those events. The channel closes when ctx ends or the subscriber falls too far behind.
	Subscribe(ctx context.Context, afterID int64) (<-chan Event, error)
}
