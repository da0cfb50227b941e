package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

func TestErrorStatusAndBody(t *testing.T) {
	cases := []struct {
		err    error
		status int
		msg    string
	}{
		{lodestone.Errorf(lodestone.EINVALID, "bad limit"), 400, "bad limit"},
		{lodestone.Errorf(lodestone.ENOTFOUND, "device not found"), 404, "device not found"},
		{lodestone.Errorf(lodestone.ECONFLICT, "exists"), 409, "exists"},
		{lodestone.Errorf(lodestone.EUNAUTHORIZED, "who"), 401, "who"},
		{lodestone.Errorf(lodestone.EFORBIDDEN, "no"), 403, "no"},
		{lodestone.Errorf(lodestone.ETOOLARGE, "big"), 413, "big"},
		{lodestone.Errorf(lodestone.EUNAVAILABLE, "busy"), 503, "busy"},
		{fmt.Errorf("wrapped: %w", lodestone.Errorf(lodestone.ENOTFOUND, "inner")), 404, "inner"},
		{errors.New("sqlite: disk I/O error"), 500, "internal error"},
		{context.Canceled, 499, "internal error"},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), 504, "internal error"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		httpapi.Error(rec, req, slog.New(slog.DiscardHandler), c.err)
		var body struct{ Error, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q", c.err, rec.Body.String())
		}
		if rec.Code != c.status || body.Error != c.msg {
			t.Fatalf("%v: status %d body %+v, want %d %q", c.err, rec.Code, body, c.status, c.msg)
		}
		if c.status == 503 && rec.Header().Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
}
