package pgtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy relays TCP between a test's clients and the PostgreSQL server, and can partition them: after Stall no
// byte passes either way and new connections are accepted but never answered, as when a network silently drops
// packets. Clients then see neither an error nor an answer, the hardest case for anything with a deadline.
type Proxy struct {
	ln      net.Listener
	target  string
	url     string
	stalled atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy starts a proxy to the server of dbURL (a postgres:// URL) and returns it; URL is dbURL through it.
// It stops when the test ends.
func StartProxy(tb testing.TB, dbURL string) *Proxy {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", dbURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	u.Host = ln.Addr().String()
	p.url = u.String()
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// URL is the database URL that connects through the proxy.
func (p *Proxy) URL() string { return p.url }

// Stall partitions the clients from the server; connections stay open.
func (p *Proxy) Stall() { p.stalled.Store(true) }

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if p.stalled.Load() {
				io.Copy(io.Discard, c) // answered never; ends when either side closes
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil || !p.track(s) {
				c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c, s)
			}()
			p.pipe(s, c)
		}()
	}
}

// pipe copies from src to dst until src fails, discarding what arrives while stalled; it closes dst at the end
// unless stalled (then dst stays open and silent).
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if !p.stalled.Load() {
				dst.Close()
			}
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
