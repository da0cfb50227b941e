package httpapi

import (
	"time"

	"github.com/lodestone-fleet/lodestone/netguard"
)

// Timeouts bound every phase of a connection, so a slow or stalled client cannot hold one open: headers must
// arrive within ReadHeader, the whole request within Read, the answer must be written within Write (streaming
// routes lift it per request with http.ResponseController), and an idle keep-alive connection closes after Idle.
// Its fields and defaults are netguard.Timeouts', which the OTLP and FUOTA listeners apply too; one converts to
// the other.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// Defaults: generous enough for a 50 MiB ELF upload over a slow uplink, short enough that a slowloris client is
// cut off within seconds.
const (
	DefaultReadHeaderTimeout = netguard.DefaultReadHeaderTimeout
	DefaultReadTimeout       = netguard.DefaultReadTimeout
	DefaultWriteTimeout      = netguard.DefaultWriteTimeout
	DefaultIdleTimeout       = netguard.DefaultIdleTimeout
)

func (t Timeouts) withDefaults() Timeouts { return Timeouts(netguard.Timeouts(t).WithDefaults()) }

func (t Timeouts) readHeader() time.Duration { return t.withDefaults().ReadHeader }
func (t Timeouts) read() time.Duration       { return t.withDefaults().Read }
func (t Timeouts) write() time.Duration      { return t.withDefaults().Write }
func (t Timeouts) idle() time.Duration       { return t.withDefaults().Idle }
