package httpapi_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

func otaFilter() lodestone.TelemetryFilter { return lodestone.TelemetryFilter{} }

func deviceInfo(t *testing.T, id, fw string, build uint64) []byte {
	t.Helper()
	p := chunk.DeviceInfo{DeviceID: id, FirmwareVersion: fw, BuildID: build}.AppendPayload(nil)
	return chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast, Payload: p}.Encode()
}

func TestReadAPIAuth(t *testing.T) {
	e := newEnv(t, opts{})
	for _, c := range []struct {
		user, pass string
		status     int
	}{{"", "", 401}, {"admin", "nope", 401}, {"root", adminPass, 401}, {"admin", adminPass, 200}} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/devices", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("%s/%s: %d", c.user, c.pass, resp.StatusCode)
		}
		if c.status == 401 && (!strings.Contains(string(body), `"error"`) ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic")) {
			t.Fatalf("401 body %q header %q", body, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Public routes.
	for _, p := range []string{"/health", "/auth/mode", "/readyz"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		if p == "/auth/mode" && strings.TrimSpace(string(body)) != `{"mode":"basic"}` {
			t.Fatalf("auth mode %s", body)
		}
	}
}

func TestReadAPIQueryValidation(t *testing.T) {
	e := newEnv(t, opts{})
	for _, q := range []string{"limit=-1", "limit=abc", "offset=x", "since=yesterday", "until=2026-13-45"} {
		var l listResp
		if s := e.get("/metrics?"+q, &l); s != 400 || l.Error == "" {
			t.Fatalf("%s: status %d error %q", q, s, l.Error)
		}
	}
	var l listResp
	if s := e.get("/devices?status=sleeping", &l); s != 400 {
		t.Fatalf("bad status filter: %d", s)
	}
	if s := e.get("/devices/nope", &l); s != 404 || l.Error == "" {
		t.Fatalf("unknown device: %d %q", s, l.Error)
	}
	if s := e.get("/devices/nope/faults", &l); s != 200 || l.Faults == nil || len(l.Faults) != 0 {
		t.Fatalf("faults of unknown device: %d %v", s, l.Faults)
	}
	if s := e.get("/no/such/route", &l); s != 404 {
		t.Fatalf("unknown route: %d", s)
	}
}

func TestReadAPITimeFilters(t *testing.T) {
	e := newEnv(t, opts{})
	e.post(nil, v("V1", "V5"))
	now := time.Now().UTC()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	for _, c := range []struct {
		q    string
		want int
	}{
		{"since=" + past.Format(time.RFC3339), 3},
		{"since=" + future.Format(time.RFC3339), 0},
		{"until=" + future.Format("2006-01-02T15:04:05"), 3},
		{"until=" + url.QueryEscape(past.Format("2006-01-02 15:04:05")), 0},
		// An offset whose '+' arrived as a space (ferrite's CLI does not encode it).
		{"since=" + past.Add(2*time.Hour).Format("2006-01-02T15:04:05") + "%2B02:00", 3},
		{"since=" + past.Add(2*time.Hour).Format("2006-01-02T15:04:05") + "+02:00", 3},
		{"limit=2", 2},
		{"limit=2&offset=2", 1},
	} {
		var l listResp
		if s := e.get("/metrics?"+c.q, &l); s != 200 || len(l.Metrics) != c.want {
			t.Fatalf("%s: status %d, %d metrics, want %d", c.q, s, len(l.Metrics), c.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC)
	for _, s := range []string{"2026-01-02T13:04:05Z", "2026-01-02T15:04:05+02:00", "2026-01-02T15:04:05 02:00",
		"2026-01-02 13:04:05", "2026-01-02T13:04:05", "2026-01-02T13:04:05.000Z", "1767359045"} {
		got, ok := httpapi.ParseTime(s)
		if !ok || !got.Equal(want) {
			t.Fatalf("ParseTime(%q) = %v %v", s, got, ok)
		}
	}
	if _, ok := httpapi.ParseTime("2026-02-30"); ok {
		t.Fatal("accepted an impossible date")
	}
}

func TestParseDeviceKey(t *testing.T) {
	for s, want := range map[string]uint32{"A300F1B2": 0xA300F1B2, "a3-00f1b2": 0xA300F1B2, "0xA300F1B2": 0xA300F1B2,
		"1": 1} {
		if got, ok := httpapi.ParseDeviceKey(s); !ok || got != want {
			t.Fatalf("ParseDeviceKey(%q) = %x %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "123456789", "xyz", "-"} {
		if _, ok := httpapi.ParseDeviceKey(s); ok {
			t.Fatalf("ParseDeviceKey(%q) accepted", s)
		}
	}
}

func TestUnmatchedRoutesAnswerJSON(t *testing.T) {
	e := newEnv(t, opts{})
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/ingest/chunks", 405, "POST"},
		{http.MethodDelete, "/devices", 405, "GET, HEAD"},
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodPost, "/nope", 404, ""},
	} {
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Allow") != c.allow ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), `"error"`) {
			t.Fatalf("%s %s: %d allow %q body %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
}
