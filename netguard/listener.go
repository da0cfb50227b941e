// Package netguard keeps one kind of client from taking a process's sockets away from the others: a listener
// wrapper that caps the connections one listener holds open, in total and per client address, and backs off
// instead of spinning when the process runs out of file descriptors; and the timeouts every HTTP server of the
// process applies to slow and idle clients (timeouts.go). Every listener of lodestone (main API, OTLP, FUOTA) goes
// through it, so a flood on one port leaves descriptors and answers for the rest.
package netguard

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMaxConnsPerAddr bounds one client address on one listener. Devices behind one NAT address share it; a
// trusted reverse proxy is exempt (Limits.Exempt).
const DefaultMaxConnsPerAddr = 256

// Limits bound the connections one listener keeps open.
type Limits struct {
	MaxConns        int // open connections on this listener; 0: no limit
	MaxConnsPerAddr int // open connections from one IPv4 address or IPv6 /64; 0: no limit
	// Exempt peers are not limited per address (trusted reverse proxies carry many clients); they still count
	// toward MaxConns.
	Exempt []netip.Prefix
	// Reject, if set, is written (best effort, without waiting) to a refused connection before it closes, e.g. a
	// plain HTTP/1.1 503 on a port that speaks HTTP/1.1. TLS and gRPC ports leave it nil: the client sees a close.
	Reject []byte
	Name   string // names the listener in logs
	Logger *slog.Logger
}

// HTTP503 is a Reject answer for HTTP/1.1 listeners.
var HTTP503 = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\nConnection: close\r\nContent-Length: 35\r\n\r\ntoo many connections, retry later\r\n")

// Listener is a net.Listener that admits a connection only while its limits allow; a refused one is closed at
// once, so it holds a descriptor for microseconds, not for the length of a timeout.
type Listener struct {
	net.Listener
	lim     Limits
	log     *slog.Logger
	mu      sync.Mutex
	open    int
	perAddr map[netip.Addr]int

	closed    chan struct{}
	closeOnce sync.Once
	refused   atomic.Int64 // since the last warning
	lastWarn  atomic.Int64 // unix nanoseconds
}

// Listen wraps ln with lim.
func Listen(ln net.Listener, lim Limits) *Listener {
	log := lim.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Listener{Listener: ln, lim: lim, log: log, perAddr: map[netip.Addr]int{}, closed: make(chan struct{})}
}

// Open reports the connections the listener holds open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Close closes the listener; connections already accepted stay open until their servers close them.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Accept returns the next connection the limits admit.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !exhausted(err) {
				return nil, err
			}
			// Out of descriptors or kernel memory: the pending connection stays in the kernel's backlog. Wait for
			// connections to close, longer each time, instead of retrying in a tight loop.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.warn("accept failed, backing off", "err", err, "wait", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		key, limited := l.key(c.RemoteAddr())
		if why := l.admit(key, limited); why != "" {
			l.refuse(c, why)
			continue
		}
		return &conn{Conn: c, l: l, key: key, limited: limited}, nil
	}
}

// exhausted reports an accept error that says the process or system is out of descriptors or buffers.
func exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// key is the per-address bucket of a peer: its IPv4 address, or its IPv6 /64 (one subscriber's usual
// allocation). limited is false for exempt peers and non-IP addresses.
func (l *Listener) key(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range l.lim.Exempt {
		if p.Contains(ip) {
			return netip.Addr{}, false
		}
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip, true
}

// admit counts a new connection in, or says why it may not open.
func (l *Listener) admit(key netip.Addr, limited bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.MaxConns > 0 && l.open >= l.lim.MaxConns {
		return "listener at its connection limit"
	}
	if limited && l.lim.MaxConnsPerAddr > 0 && l.perAddr[key] >= l.lim.MaxConnsPerAddr {
		return "client address at its connection limit"
	}
	l.open++
	if limited {
		l.perAddr[key]++
	}
	return ""
}

func (l *Listener) release(key netip.Addr, limited bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if limited {
		if n := l.perAddr[key] - 1; n > 0 {
			l.perAddr[key] = n
		} else {
			delete(l.perAddr, key)
		}
	}
}

// refuse answers and closes c at once. The write goes to an empty socket buffer, so it does not block; the
// deadline only guards against the impossible.
func (l *Listener) refuse(c net.Conn, why string) {
	if len(l.lim.Reject) > 0 {
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		c.Write(l.lim.Reject)
	}
	c.Close()
	l.refused.Add(1)
	l.warn("connections refused", "reason", why, "peer", c.RemoteAddr().String())
}

// warn logs at most once per 10 s per listener, so a flood does not become a flood of log lines; refused counts
// the connections refused since the last line.
func (l *Listener) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(10*time.Second) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	args = append(args, "listener", l.lim.Name, "refused", l.refused.Swap(0), "open", l.Open())
	l.log.Warn(msg, args...)
}

// conn gives its slot back when it closes, once, whoever closes it (server, TLS layer or hijacker).
type conn struct {
	net.Conn
	l       *Listener
	key     netip.Addr
	limited bool
	once    sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key, c.limited) })
	return err
}

// ReadFrom keeps sendfile for downloads (net/http copies files through the connection's ReaderFrom).
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http half-close before closing, as it does on a bare TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
