// Package lograte keeps a line that repeats under attack or failure (refused credentials, a full disk) from
// flooding the log, and the disk it is written to: one line per interval, the next one saying how many were left
// out.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter lets one line through per Every. It is safe for concurrent use; the zero value lets every line through.
type Limiter struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be written at now and, when it may, how many were left out since the last one.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// Log writes msg at level with attrs and "suppressed_since_last", or only counts it.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, now time.Time, msg string, attrs ...any) {
	if ok, n := l.Allow(now); ok {
		log.Log(context.Background(), level, msg, append(attrs, "suppressed_since_last", n)...)
	}
}
