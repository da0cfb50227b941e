package lodestone

import (
	"context"
	"encoding/json"
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
// returns nil, none when it returns an error. On success it sets each record's ID; one call's records get
// consecutive ids, in order, so a reader can name the batch by its first and last id.
type LogStore interface {
	WriteLogs(ctx context.Context, records []*LogRecord) error
	FindLogs(ctx context.Context, filter LogFilter) ([]*LogRecord, error)
	// DeleteLogsBefore removes records received before cutoff and returns how many it removed.
	DeleteLogsBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// EventLogs is the event published after log records are committed; its data is a JSON array of records.
const EventLogs = "logs"

// EventLogBatch announces committed log records on a bus shared by replicas, which then read them from the store
// for their live tails; its data names their ids (LogBatch). It is internal: event streams leave it out.
const EventLogBatch = "log_batch"

// LogBatch is the data of an EventLogBatch event: the records with ids First to Last, inclusive.
type LogBatch struct {
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// LogRecordJSON is the JSON shape of a log record in the API and in EventLogs events. Body and attributes are
// embedded as the JSON they are stored as; times are RFC 3339 with nanoseconds.
type LogRecordJSON struct {
	ID           int64           `json:"id,omitempty"`
	Project      string          `json:"project"`
	DeviceID     string          `json:"device_id"`
	Time         time.Time       `json:"time"`
	ObservedTime time.Time       `json:"observed_time"`
	Severity     int32           `json:"severity_number"`
	SeverityText string          `json:"severity_text"`
	Body         json.RawMessage `json:"body"`
	Attributes   json.RawMessage `json:"attributes"`
	TraceID      string          `json:"trace_id"`
	SpanID       string          `json:"span_id"`
	EventName    string          `json:"event_name"`
	Flags        uint32          `json:"flags"`
	ReceivedAt   time.Time       `json:"received_at"`
}

// JSON returns the record's JSON shape.
func (r *LogRecord) JSON() LogRecordJSON {
	raw := func(s, empty string) json.RawMessage {
		if s == "" || !json.Valid([]byte(s)) {
			return json.RawMessage(empty)
		}
		return json.RawMessage(s)
	}
	return LogRecordJSON{ID: r.ID, Project: r.Project, DeviceID: r.DeviceID, Time: r.Time, ObservedTime: r.ObservedTime,
		Severity: r.Severity, SeverityText: r.SeverityText, Body: raw(r.Body, "null"),
		Attributes: raw(r.Attributes, "{}"), TraceID: r.TraceID, SpanID: r.SpanID, EventName: r.EventName,
		Flags: r.Flags, ReceivedAt: r.ReceivedAt}
}

// LogScan selects log records in the order they were stored, for exports and for readers that follow the table.
type LogScan struct {
	Project  string
	DeviceID string
	Since    time.Time // inclusive, on the receive time
	Until    time.Time // exclusive, on the receive time
	AfterID  int64     // only records with a larger id
	Limit    int       // at most this many (ClampLimit applies)
}

// LogScanner reads log records by id, oldest first. Both stores implement it beside LogStore.
type LogScanner interface {
	ScanLogs(ctx context.Context, scan LogScan) ([]*LogRecord, error)
}
