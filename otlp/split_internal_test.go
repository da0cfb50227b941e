package otlp

import (
	"bytes"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// eofConn is a connection with nothing more to read.
type eofConn struct{ net.Conn }

func (eofConn) Read([]byte) (int, error) { return 0, io.EOF }

// TestAckFilterDropsOnlyFirstSettingsAck: the splitter's SETTINGS is acknowledged once by the client; net/http must
// see every other frame, including later acknowledgements of its own SETTINGS, byte for byte.
func TestAckFilterDropsOnlyFirstSettingsAck(t *testing.T) {
	settings := []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100}
	ack := []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}
	headers := append([]byte{0, 0, 5, 1, 4, 0, 0, 0, 1}, "hello"...)
	data := append([]byte{0, 0, 3, 0, 1, 0, 0, 0, 1}, "abc"...)
	var in, want bytes.Buffer
	for _, part := range [][]byte{[]byte(http2Preface), settings, ack, headers, ack, data} {
		in.Write(part)
	}
	for _, part := range [][]byte{[]byte(http2Preface), settings, headers, ack, data} {
		want.Write(part)
	}
	for _, chunk := range []int{1, 7, 4096} { // any read size
		c := &ackFilterConn{replayConn: &replayConn{Conn: eofConn{}, buf: in.Bytes()}, preface: len(http2Preface)}
		var got bytes.Buffer
		buf := make([]byte, chunk)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("read size %d: got %q\nwant %q", chunk, got.Bytes(), want.Bytes())
		}
	}
}

// TestSniffGRPC: HTTP/1.1 is told apart on its first differing byte; HTTP/2 by its first request's content type.
func TestSniffGRPC(t *testing.T) {
	if g, err := sniffGRPC(bytes.NewReader([]byte("GET / HTTP/1.1\r\n")), func() { t.Error("preface seen") }); g ||
		err != nil {
		t.Fatalf("HTTP/1.1: %v %v", g, err)
	}
	for ct, want := range map[string]bool{"application/grpc": true, "application/grpc+proto": true,
		"application/x-protobuf": false} {
		var b bytes.Buffer
		b.WriteString(http2Preface)
		b.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
		b.Write(headersFrame(t, ct))
		called := false
		g, err := sniffGRPC(&b, func() { called = true })
		if err != nil || g != want || !called {
			t.Fatalf("%s: %v %v (preface callback %v)", ct, g, err, called)
		}
	}
}

func headersFrame(t *testing.T, contentType string) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/x"}, {":authority", "h"},
		{"content-type", contentType}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
