package lodestone

import (
	"context"
	"time"
)

// LogRecord is one log line a device or program sent over OTLP. Body and Attributes are JSON text (the OTLP
// AnyValue mapping detritus uses), so every backend stores and returns them verbatim.
type LogRecord struct {
	ID           int64
	Project      string // the token's project, or detritus' source.project
	DeviceID     string // the source: detritus' source.install_id, device.id or service.instance.id
	Time         time.Time
	ObservedTime time.Time
	Severity     int32 // OTLP severity number: 1 TRACE ... 9 INFO ... 17 ERROR ... 21 FATAL
	SeverityText string
	Body         string // JSON
	Attributes   string // JSON object
	TraceID      string // lowercase hex, empty when absent
	SpanID       string
	EventName    string
	Flags        uint32
	ReceivedAt   time.Time
}

// LogFilter selects log records. Results are newest first (record time, then row id).
type LogFilter struct {
	Project     string
	DeviceID    string
	Since       time.Time // inclusive, on the record time
	Until       time.Time // exclusive
	MinSeverity int32     // 0: any
	Text        string    // substring of the body, case-insensitive for ASCII
	Limit       int
	Offset      int
}

// LogStore keeps log records. WriteLogs stores every record in one transaction: all of them are durable when it
// returns nil, none when it returns an error.
type LogStore interface {
	WriteLogs(ctx context.Context, records []*LogRecord) error
	FindLogs(ctx context.Context, filter LogFilter) ([]*LogRecord, error)
	// DeleteLogsBefore removes records received before cutoff and returns how many it removed.
	DeleteLogsBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// EventLogs is the event published after log records are committed; its data is a JSON array of records.
const EventLogs = "logs"
