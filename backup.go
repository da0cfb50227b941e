package lodestone

import (
	"context"
	"io"
	"time"
)

// Snapshot is a consistent copy of the whole database as one SQLite file, taken at Taken, ready to be read once.
// Closing it removes the temporary file behind it.
type Snapshot struct {
	io.ReadCloser
	Size  int64
	Taken time.Time
}

// BackupService takes snapshots while the server keeps writing: every commit before the snapshot is in it,
// nothing after it. The file opens as a lodestone SQLite database, so restoring is putting it in place of the
// database (or copying it into PostgreSQL with lodestone copy).
type BackupService interface {
	Backup(ctx context.Context) (*Snapshot, error)
}

// DeviceSummary is a device with how many records it has stored, for fleet reports.
type DeviceSummary struct {
	Device
	Faults, Metrics, Reboots int64
}

// DeviceReporter lists devices with their record counts, ordered like FindDevices (last contact, newest first).
type DeviceReporter interface {
	DeviceSummaries(ctx context.Context, filter DeviceFilter) ([]*DeviceSummary, error)
}
