package netguard

import (
	"net/http"
	"time"
)

// Timeouts bound every phase of a connection, so a slow or stalled client cannot hold one open: headers must
// arrive within ReadHeader, the whole request within Read, the answer must be written within Write (streaming
// routes lift it per request with http.ResponseController), and an idle keep-alive connection closes after Idle.
// On HTTP/2 Read and Write bound each stream and Idle the connection without streams.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// Defaults: generous enough for a 50 MiB upload over a slow uplink, short enough that a slowloris client is cut
// off within seconds.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// HTTP/2 bounds: a connection that sends nothing for http2PingAfter is pinged and closed if the ping is not
// answered within http2PingTimeout; a client that stops reading our frames is cut off after http2WriteByteTimeout.
const (
	http2PingAfter        = 30 * time.Second
	http2PingTimeout      = 15 * time.Second
	http2WriteByteTimeout = 30 * time.Second
	http2MaxStreams       = 100
)

// WithDefaults fills the zero fields.
func (t Timeouts) WithDefaults() Timeouts {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return Timeouts{ReadHeader: or(t.ReadHeader, DefaultReadHeaderTimeout), Read: or(t.Read, DefaultReadTimeout),
		Write: or(t.Write, DefaultWriteTimeout), Idle: or(t.Idle, DefaultIdleTimeout)}
}

// Apply sets srv's timeouts (zero fields take the defaults) and bounds its HTTP/2 connections (h2 over TLS or
// h2c, which gRPC uses): at most 100 concurrent streams, a ping to a silent connection, and a write deadline per
// frame, so an idle or stalled HTTP/2 client is closed like an HTTP/1.1 one.
func (t Timeouts) Apply(srv *http.Server) {
	t = t.WithDefaults()
	srv.ReadHeaderTimeout = t.ReadHeader
	srv.ReadTimeout = t.Read
	srv.WriteTimeout = t.Write
	srv.IdleTimeout = t.Idle
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	h2 := srv.HTTP2
	if h2.MaxConcurrentStreams == 0 {
		h2.MaxConcurrentStreams = http2MaxStreams
	}
	if h2.SendPingTimeout == 0 {
		h2.SendPingTimeout = http2PingAfter
	}
	if h2.PingTimeout == 0 {
		h2.PingTimeout = http2PingTimeout
	}
	if h2.WriteByteTimeout == 0 {
		h2.WriteByteTimeout = http2WriteByteTimeout
	}
}
