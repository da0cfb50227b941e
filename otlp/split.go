package otlp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// connSplitter shares one listener between grpc-go's own server and net/http: a connection that starts with the
// HTTP/2 preface and whose first request has a gRPC content type goes to grpc-go, everything else (HTTP/1.1,
// h2c upgrades, HTTP/2 whose first request is /v1/logs or /v1/crashes) to net/http, which still serves gRPC
// through ServeHTTP when a later stream asks for it. grpc-go's transport costs a good deal less CPU per export
// than its ServeHTTP bridge. Nothing is written before the choice, so each server sees a fresh connection.
type connSplitter struct {
	ln         net.Listener
	http, grpc *chanListener
	// A connection must show its first bytes within readHeader, and an HTTP/2 one its first HEADERS frame within
	// idle, as net/http would have bounded it.
	readHeader, idle time.Duration
}

func newConnSplitter(ln net.Listener, readHeader, idle time.Duration) *connSplitter {
	return &connSplitter{ln: ln, http: newChanListener(ln.Addr()), grpc: newChanListener(ln.Addr()),
		readHeader: readHeader, idle: idle}
}

// run accepts until the listener fails or closes; net/http's side then sees the error.
func (s *connSplitter) run() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.http.fail(err)
			return
		}
		go s.route(c)
	}
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func (s *connSplitter) route(c net.Conn) {
	rec := &recordingReader{r: c}
	c.SetReadDeadline(time.Now().Add(s.readHeader))
	sentSettings := false
	isGRPC, err := sniffGRPC(rec, func() {
		// grpc-go clients send their first request only once the server's SETTINGS arrived; an empty SETTINGS
		// frame (all defaults) is a valid start of the server's side, and the server chosen sends its own next.
		c.SetWriteDeadline(time.Now().Add(s.readHeader))
		_, werr := c.Write([]byte{0, 0, 0, byte(http2.FrameSettings), 0, 0, 0, 0, 0})
		c.SetWriteDeadline(time.Time{})
		sentSettings = werr == nil
		c.SetReadDeadline(time.Now().Add(s.idle))
	})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			c.Close() // silent, gone, or idle before its first request
			return
		}
		isGRPC = false // let net/http answer whatever it is
	}
	c.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: c, buf: rec.buf.Bytes()}
	switch {
	case isGRPC: // grpc-go ignores SETTINGS acknowledgements
		s.grpc.deliver(rc)
	case sentSettings: // net/http hangs up on an acknowledgement of SETTINGS it did not send
		s.http.deliver(&ackFilterConn{replayConn: rc, preface: len(http2Preface)})
	default:
		s.http.deliver(rc)
	}
}

// sniffGRPC reads the start of a connection: false as soon as it is not the HTTP/2 preface, else whether the
// first HEADERS frame carries a gRPC content type.
// preface is called once the preface has arrived.
func sniffGRPC(r io.Reader, preface func()) (bool, error) {
	var b [len(http2Preface)]byte
	for n := 0; n < len(b); {
		m, err := r.Read(b[n:])
		if m > 0 && !strings.HasPrefix(http2Preface, string(b[:n+m])) {
			return false, nil
		}
		n += m
		if err != nil && n < len(b) {
			return false, err
		}
	}
	preface()
	fr := http2.NewFramer(io.Discard, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = maxMetadataBytes
	for range 16 { // SETTINGS, WINDOW_UPDATE, PING, PRIORITY may come first
		f, err := fr.ReadFrame()
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return false, nil // malformed: net/http answers it
			}
			return false, err
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			return strings.HasPrefix(headerValue(h, "content-type"), "application/grpc"), nil
		}
	}
	return false, nil
}

func headerValue(h *http2.MetaHeadersFrame, name string) string {
	for _, f := range h.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// recordingReader keeps every byte it reads, to replay them to the server the connection goes to.
type recordingReader struct {
	r   io.Reader
	buf bytes.Buffer
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

// replayConn reads buf before the connection's own bytes.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ackFilterConn removes the client's acknowledgement of the splitter's SETTINGS frame from an HTTP/2 stream:
// the first SETTINGS frame with the ACK flag after the preface. Everything else passes unchanged.
type ackFilterConn struct {
	*replayConn
	preface int    // preface bytes still to pass
	pass    int    // payload bytes of the current frame still to pass
	in      []byte // bytes read and not yet classified
	out     []byte // bytes classified and not yet returned
	rb      []byte
	dropped bool
}

func (c *ackFilterConn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.dropped && len(c.in) == 0 {
			return c.replayConn.Read(p)
		}
		if len(c.in) > 0 {
			switch {
			case c.dropped:
				c.out, c.in = c.in, nil
				continue
			case c.preface > 0:
				k := min(c.preface, len(c.in))
				c.out, c.in, c.preface = c.in[:k], c.in[k:], c.preface-k
				continue
			case c.pass > 0:
				k := min(c.pass, len(c.in))
				c.out, c.in, c.pass = c.in[:k], c.in[k:], c.pass-k
				continue
			case len(c.in) >= 9:
				length := int(c.in[0])<<16 | int(c.in[1])<<8 | int(c.in[2])
				if length == 0 && http2.FrameType(c.in[3]) == http2.FrameSettings &&
					http2.Flags(c.in[4]).Has(http2.FlagSettingsAck) {
					c.dropped, c.in = true, c.in[9:]
					continue
				}
				c.out, c.in, c.pass = c.in[:9], c.in[9:], length
				continue
			}
		}
		if c.rb == nil {
			c.rb = make([]byte, 16<<10)
		}
		n, err := c.replayConn.Read(c.rb)
		c.in = append(c.in, c.rb[:n]...)
		if n == 0 && err != nil {
			return 0, err
		}
	}
}

// chanListener is a net.Listener fed by a connSplitter.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// fail makes Accept return err (the real listener's).
func (l *chanListener) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	l.Close()
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
