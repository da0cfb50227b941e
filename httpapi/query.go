package httpapi

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// telemetryFilter reads limit, offset, since and until from a query string.
func telemetryFilter(q url.Values) (lodestone.TelemetryFilter, error) {
	var f lodestone.TelemetryFilter
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return f, err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return f, err
	}
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	return f, nil
}

func uintParam(q url.Values, name string) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, lodestone.Errorf(lodestone.EINVALID, "%s must be a non-negative integer, got %q", name, s)
	}
	return int(n), nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := ParseTime(s)
	if _, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64); !ok && (err == nil || errors.Is(err, strconv.ErrRange)) {
		return time.Time{}, lodestone.Errorf(lodestone.EINVALID,
			"%s is out of range: Unix seconds must be at most %d (9999-12-31), got %q", name, maxUnixSeconds, s)
	}
	if !ok {
		return time.Time{}, lodestone.Errorf(lodestone.EINVALID,
			"%s must be a time such as 2026-01-02T15:04:05Z, 2026-01-02T15:04:05+02:00, 2026-01-02 15:04:05 (UTC) "+
				"or 2026-01-02, got %q", name, s)
	}
	return t, nil
}

// maxUnixSeconds is 9999-12-31T23:59:59Z, the last second the text layouts can name.
const maxUnixSeconds = 253402300799

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05", // no zone: UTC, like ferrite's stored times
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTime accepts ISO-8601 with T or space, Z or an offset, and plain dates, all without a zone meaning UTC. It
// also repairs an offset whose '+' was decoded as a space, which ferrite's CLI produces by not encoding it.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 6 && s[n-6] == ' ' && s[n-3] == ':' {
		s = s[:n-6] + "+" + s[n-5:]
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	// Unix seconds past year 9999 would overflow time.Time's arithmetic and wrap into the past, turning "since
	// the far future" into "since forever"; they are refused, like any time the layouts cannot express.
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil && sec >= 0 && sec <= maxUnixSeconds {
		return time.Unix(sec, 0).UTC(), true
	}
	return time.Time{}, false
}
