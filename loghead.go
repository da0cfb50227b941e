package lodestone

import "context"

// LogHead reports where the log table ends, so a live tail can start after what a page already showed and
// follow new records by id (LogScanner) without reading the table from the start.
type LogHead interface {
	// LastLogID returns the largest stored log record id, or 0 when there is none.
	LastLogID(ctx context.Context) (int64, error)
}
