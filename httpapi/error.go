package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
)

// codes maps error codes to HTTP statuses; one table for every handler.
var codes = map[string]int{
	lodestone.EINVALID:      http.StatusBadRequest,
	lodestone.ENOTFOUND:     http.StatusNotFound,
	lodestone.ECONFLICT:     http.StatusConflict,
	lodestone.EUNAUTHORIZED: http.StatusUnauthorized,
	lodestone.EFORBIDDEN:    http.StatusForbidden,
	lodestone.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	lodestone.EUNAVAILABLE:  http.StatusServiceUnavailable,
	lodestone.EINTERNAL:     http.StatusInternalServerError,
	codeRateLimited:         http.StatusTooManyRequests,
	codeUnsupportedMedia:    http.StatusUnsupportedMediaType,
}

// codeUnsupportedMedia answers a JSON route sent another content type.
const codeUnsupportedMedia = "unsupported_media_type"

// statusClientClosed is nginx's code for a client that went away; it only shows in logs and metrics.
const statusClientClosed = 499

// ErrorStatus returns the HTTP status for err.
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var fe FieldErrors
	if errors.As(err, &fe) {
		return http.StatusUnprocessableEntity
	}
	if s, ok := codes[lodestone.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is ferrite's error shape plus a stable machine-readable code and, for 422, the fields at fault.
type errorBody struct {
	Error  string            `json:"error"`
	Code   string            `json:"code"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Error writes err as JSON. Internal errors are logged and shown only as "internal error".
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := ErrorStatus(err)
	code := lodestone.ErrorCode(err)
	var fe FieldErrors
	if errors.As(err, &fe) {
		writeJSON(w, status, errorBody{Error: fe.Error(), Code: lodestone.EINVALID, Fields: fe})
		return
	}
	switch status {
	case http.StatusInternalServerError, http.StatusGatewayTimeout:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		if lodestone.StorageFull(err) {
			w.Header().Set("Retry-After", strconv.Itoa(int(lodestone.StorageFullRetry.Seconds())))
			lodestone.LogStorageFull(log, err, "method", r.Method, "path", r.URL.Path)
		}
	case statusClientClosed:
		code = "canceled"
	}
	writeJSON(w, status, errorBody{Error: lodestone.ErrorMessage(err), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v) // the status is sent; a failed write means the client left
}
