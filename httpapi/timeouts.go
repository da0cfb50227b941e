package httpapi

import "time"

// Timeouts bound every phase of a connection, so a slow or stalled client cannot hold one open: headers must
// arrive within ReadHeader, the whole request within Read, the answer must be written within Write (streaming
// routes lift it per request with http.ResponseController), and an idle keep-alive connection closes after Idle.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// Defaults: generous enough for a 50 MiB ELF upload over a slow uplink, short enough that a slowloris client is
// cut off within seconds.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (t Timeouts) readHeader() time.Duration {
	return orDefault(t.ReadHeader, DefaultReadHeaderTimeout)
}
func (t Timeouts) read() time.Duration  { return orDefault(t.Read, DefaultReadTimeout) }
func (t Timeouts) write() time.Duration { return orDefault(t.Write, DefaultWriteTimeout) }
func (t Timeouts) idle() time.Duration  { return orDefault(t.Idle, DefaultIdleTimeout) }
