package lodestone

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/lodestone-fleet/lodestone/lograte"
)

// Error codes. Each maps to one HTTP status in httpapi; anything without a code is internal and is never shown to
// clients verbatim.
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ETOOLARGE     = "too_large"
	EUNAVAILABLE  = "unavailable"
	EINTERNAL     = "internal"
)

// Error is an application error whose message is safe to show to a client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("lodestone error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted, client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other non-nil error and "" for
// nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if StorageFull(err) {
		return EUNAVAILABLE
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err. Internal errors get a generic message so that driver or
// file-system details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if StorageFull(err) {
		return MsgStorageFull
	}
	return "internal error"
}

// MsgStorageFull is what a client is told when a write failed for lack of space, and StorageFullRetry the
// Retry-After it is given: space comes back when an operator frees it, not in a second.
const (
	MsgStorageFull   = "storage is full, retry later"
	StorageFullRetry = 30 * time.Second
)

// StorageFull reports whether err says the disk or the database is out of space: ENOSPC or EDQUOT from the file
// system, SQLite's SQLITE_FULL, PostgreSQL's disk_full (SQLSTATE 53100). Such an error is EUNAVAILABLE, not
// internal: nothing is wrong with the request and retrying once space is freed works. Drivers are recognised
// without importing them: pgx errors carry SQLState(); go-sqlite3's carry only a fixed message.
func StorageFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) && pg.SQLState() == "53100" {
		return true
	}
	return strings.Contains(err.Error(), "database or disk is full")
}

// storageFullLog is how often a full disk is logged: a full disk fails every write, and one line per failed
// request would flood the log (and the disk it is written to).
var storageFullLog = lograte.Limiter{Every: time.Minute}

// LogStorageFull logs a storage-full failure at most once per minute for the whole process, with how many
// were left out since the last line. Every error writer calls it instead of logging the failure itself.
func LogStorageFull(log *slog.Logger, err error, attrs ...any) {
	storageFullLog.Log(log, slog.LevelError, time.Now(), "storage is full: writes fail with 503 until space is freed",
		append(attrs, "err", err)...)
}
