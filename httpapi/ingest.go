package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
)

// ingestResponse is ferrite's exact shape: errors is omitted when empty.
type ingestResponse struct {
	OK             bool       `json:"ok"`
	ChunksReceived int        `json:"chunks_received"`
	Errors         []string   `json:"errors,omitempty"`
	OTA            *ota.Offer `json:"ota,omitempty"` // lodestone: the update on offer to the one device that posted
}

// ingestRejected answers a request the shared checks refused (text that is not UTF-8 or holds NUL in its path,
// query or X- headers) in ferrite's shape.
func (s *Server) ingestRejected(w http.ResponseWriter, err error) {
	s.ingestReply(w, ErrorStatus(err), 0, lodestone.ErrorMessage(err))
}

// ingestChunks implements POST /ingest/chunks. Gateways drop a batch on 4xx and retry on 5xx, so 4xx is kept for
// data that can never be accepted and overload answers 503 with Retry-After.
func (s *Server) ingestChunks(w http.ResponseWriter, r *http.Request) {
	s.prom.ingestRequests.Inc()
	deviceID := r.Header.Get("X-Device-Id")
	if deviceID != "" && !validDeviceHeader(deviceID) {
		s.ingestReply(w, http.StatusBadRequest, 0, "X-Device-Id must be 1-128 visible ASCII characters")
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.ingestReply(w, http.StatusRequestEntityTooLarge, 0, s.tooLarge())
		return
	}
	buf := s.getBuf()
	defer s.bufs.Put(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.ingestReply(w, http.StatusRequestEntityTooLarge, 0, s.tooLarge())
			return
		}
		s.ingestReply(w, http.StatusBadRequest, 0, "could not read request body: "+err.Error())
		return
	}
	if buf.Len() == 0 {
		s.ingestReply(w, http.StatusBadRequest, 0, "empty body: send one or more ferrite chunks")
		return
	}
	conn, _ := r.Context().Value(connKey{}).(*ingest.Conn)
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	req := ingest.Request{Body: buf.Bytes(), HeaderDeviceID: deviceID, RemoteAddr: host, Conn: conn}
	if p := PrincipalFrom(r.Context()); p != nil {
		// A device key speaks only for its own device; the fleet's ingest key (gateways) for every device.
		req.KeyDevice = p.DeviceID
	}
	res, err := s.deps.Ingest.Ingest(r.Context(), req)
	s.prom.ingestChunks.Add(float64(res.ChunksReceived))
	if err != nil {
		status := ErrorStatus(err)
		if lodestone.StorageFull(err) {
			// Space comes back when an operator frees it, not in a second: the same answer as every other route.
			w.Header().Set("Retry-After", strconv.Itoa(int(lodestone.StorageFullRetry.Seconds())))
		} else if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		} else if status >= 500 {
			s.log.Error("ingest failed", "err", err)
		}
		s.ingestReply(w, status, res.ChunksReceived, lodestone.ErrorMessage(err))
		return
	}
	status := http.StatusOK
	switch {
	case res.Stored == 0:
		status = http.StatusBadRequest
	case len(res.Errors) > 0:
		status = http.StatusMultiStatus
	}
	writeIngest(w, status, ingestResponse{OK: len(res.Errors) == 0, ChunksReceived: res.ChunksReceived,
		Errors: res.Errors, OTA: s.ingestOTA(r, res.Reported)})
}

func (s *Server) tooLarge() string {
	return fmt.Sprintf("body exceeds the %d byte limit", s.cfg.MaxBodyBytes)
}

func (s *Server) ingestReply(w http.ResponseWriter, status, chunks int, msg string) {
	writeIngest(w, status, ingestResponse{ChunksReceived: chunks, Errors: []string{msg}})
}

func writeIngest(w http.ResponseWriter, status int, res ingestResponse) {
	w.Header().Set("Content-Type", "application/json")
	if res.OK && len(res.Errors) == 0 && res.OTA == nil {
		// The hot path: skip reflection.
		b := make([]byte, 0, 48)
		b = append(b, `{"ok":true,"chunks_received":`...)
		b = strconv.AppendInt(b, int64(res.ChunksReceived), 10)
		b = append(b, "}\n"...)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(res)
}

func (s *Server) getBuf() *bytes.Buffer {
	if b, ok := s.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func validDeviceHeader(v string) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7E {
			return false
		}
	}
	return true
}
