package otlp

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// decodedBody undoes a whole-body Content-Encoding (gzip or zstd) and bounds the body twice: the wire bytes and
// the decompressed bytes, so neither a huge upload nor a small bomb gets past MaxBodyBytes.
func (s *Server) decodedBody(w http.ResponseWriter, r *http.Request) (io.ReadCloser, int, string) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, "payload exceeds maximum size of " +
			itoa(s.cfg.MaxBodyBytes) + " bytes"
	}
	wire := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return wire, 0, ""
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, http.StatusBadRequest, "bad request: gzip body: " + err.Error()
		}
		return http.MaxBytesReader(w, zr, s.cfg.MaxBodyBytes), 0, ""
	case "zstd":
		zr, err := zstd.NewReader(wire, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, http.StatusBadRequest, "bad request: zstd body: " + err.Error()
		}
		return http.MaxBytesReader(w, zr.IOReadCloser(), s.cfg.MaxBodyBytes), 0, ""
	default:
		return nil, http.StatusUnsupportedMediaType, "unsupported content encoding " + enc
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// zstdCodec lets gRPC clients send zstd-compressed messages (grpc-encoding: zstd), as detritus 0.2 clients may.
type zstdCodec struct{}

func init() { encoding.RegisterCompressor(zstdCodec{}) }

func (zstdCodec) Name() string { return "zstd" }

func (zstdCodec) Compress(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
}

func (zstdCodec) Decompress(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}
