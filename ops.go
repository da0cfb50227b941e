package lodestone

import (
	"context"
	"time"
)

// Alert kinds, ferrite's alert_type values plus lodestone's device_online.
const (
	AlertFault         = "fault"
	AlertDeviceOffline = "device_offline"
	AlertDeviceOnline  = "device_online"
	AlertCampaignHalt  = "ota_campaign_halted" // a rollout's health gate or failure threshold stopped it
	AlertRegression    = "crash_regression"    // a resolved crash issue came back on newer firmware
)

// Alert delivery states.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // every attempt failed; no more are made
)

// AlertDelivery is one alert on its way to one webhook. The queue is a table, so retries survive a restart, and
// the table is also the delivery log.
type AlertDelivery struct {
	ID       int64
	Kind     string // AlertFault, AlertDeviceOffline, AlertDeviceOnline, AlertCampaignHalt, AlertRegression
	DeviceID string
	URL      string
	Body     []byte // the exact JSON posted, which the signature covers
	// DedupKey makes enqueueing idempotent: a second delivery with the same key and URL is not queued. Replicas
	// that each see the same event enqueue it once.
	DedupKey    string
	Status      string
	Attempts    int
	LastStatus  int    // HTTP status of the last attempt; 0 when it got no answer
	LastError   string // why the last attempt failed
	CreatedAt   time.Time
	NextAttempt time.Time
	DeliveredAt *time.Time
}

// AlertFilter selects deliveries for the log, newest first.
type AlertFilter struct {
	Status string // empty: any
	Limit  int
	Offset int
}

// AlertStore is the durable alert queue.
type AlertStore interface {
	// EnqueueAlerts queues deliveries that are not queued yet (by DedupKey and URL) and, for device_offline
	// alerts, remembers the device as offline-alerted so that its return can be told. It returns how many it
	// queued.
	EnqueueAlerts(ctx context.Context, ds []*AlertDelivery) (int, error)
	// ClaimAlerts takes up to limit pending deliveries due at now, oldest first, and hides them from other
	// claimers until now+lease, so that with several senders each delivery is attempted by one.
	ClaimAlerts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*AlertDelivery, error)
	// FinishAlert records an attempt: delivered, or failed with the next attempt at next (zero: give up).
	FinishAlert(ctx context.Context, id int64, ok bool, status int, errText string, now, next time.Time) error
	// AlertsBackOnline finds the offline-alerted devices that are online again, forgets them and queues the
	// deliveries build returns for each, in one transaction, so each return is reported once. It returns the
	// devices.
	AlertsBackOnline(ctx context.Context, build func(deviceID string, offlineAt time.Time) []*AlertDelivery) (
		[]string, error)
	// FindAlertDeliveries lists deliveries newest first.
	FindAlertDeliveries(ctx context.Context, f AlertFilter) ([]*AlertDelivery, error)
}

// PurgeResult counts the rows one retention run deleted, per table.
type PurgeResult struct {
	Cutoff   time.Time        `json:"cutoff"`
	Started  time.Time        `json:"started_at"`
	Finished time.Time        `json:"finished_at"`
	Deleted  map[string]int64 `json:"deleted"`
	Error    string           `json:"error,omitempty"`
}

// RetentionStore deletes old telemetry.
type RetentionStore interface {
	// PurgeBefore deletes telemetry received before cutoff in transactions of at most batch rows per table, so
	// that ingest never waits long for a lock. It returns what it deleted, also when ctx ends part-way.
	PurgeBefore(ctx context.Context, cutoff time.Time, batch int) (map[string]int64, error)
	// SaveRetentionRun and LastRetentionRun keep the outcome of the last run, for GET /admin/retention on any
	// replica.
	SaveRetentionRun(ctx context.Context, r *PurgeResult) error
	LastRetentionRun(ctx context.Context) (*PurgeResult, error) // ENOTFOUND before the first run
}

// FleetCounts are the fleet's sizes, for Prometheus gauges and the retention page.
type FleetCounts struct {
	Devices, DevicesOnline, Faults, Metrics, Reboots int64
	Groups                                           int64
}

// FleetCounter counts rows.
type FleetCounter interface {
	FleetCounts(ctx context.Context) (FleetCounts, error)
}
