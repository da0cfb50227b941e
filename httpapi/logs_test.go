package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

func newLogsEnv(t *testing.T) (*env, *otlp.Fanout) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	bus := otlp.NewFanout()
	api := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: db, Telemetry: db, Auth: admin,
		Logger: slog.New(slog.DiscardHandler), Logs: db, LogEvents: bus, CrashUploads: db})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		srv.Close()
		db.Close()
	})
	return &env{t: t, srv: srv, db: db}, bus
}

func TestLogsQuery(t *testing.T) {
	e, _ := newLogsEnv(t)
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []*lodestone.LogRecord
	for i := range 50 {
		dev := "a"
		if i%2 == 1 {
			dev = "b"
		}
		sev := int32(9)
		if i%10 == 0 {
			sev = 17
		}
		recs = append(recs, &lodestone.LogRecord{Project: "p", DeviceID: dev, Time: base.Add(time.Duration(i) * time.Minute),
			ObservedTime: base, Severity: sev, Body: `"msg ` + string(rune('A'+i%26)) + `"`, Attributes: `{}`, ReceivedAt: base})
	}
	if err := e.db.WriteLogs(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Logs []lodestone.LogRecordJSON `json:"logs"`
	}
	if st := e.get("/logs?device=a&limit=5", &out); st != 200 || len(out.Logs) != 5 || out.Logs[0].DeviceID != "a" ||
		!out.Logs[0].Time.Equal(base.Add(48*time.Minute)) || string(out.Logs[0].Body) != `"msg W"` {
		t.Fatalf("device page: %d %+v", st, out.Logs)
	}
	if e.get("/logs?severity=error&limit=100", &out); len(out.Logs) != 5 {
		t.Fatalf("errors: %d", len(out.Logs))
	}
	if e.get("/logs?q=msg%20b&limit=100", &out); len(out.Logs) != 2 { // B at i=1 and i=27, case-insensitive
		t.Fatalf("text: %d", len(out.Logs))
	}
	if e.get("/logs?since=2026-05-01T00:10:00Z&until=2026-05-01T00:20:00Z", &out); len(out.Logs) != 10 {
		t.Fatalf("range: %d", len(out.Logs))
	}
	if e.get("/logs?limit=10&offset=45", &out); len(out.Logs) != 5 {
		t.Fatalf("offset: %d", len(out.Logs))
	}
	var bad listResp
	if st := e.get("/logs?severity=loud", &bad); st != 400 || !strings.Contains(bad.Error, "severity") {
		t.Fatalf("bad severity: %d %q", st, bad.Error)
	}
	resp, _ := http.Get(e.srv.URL + "/logs")
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	var ups struct {
		CrashUploads []any `json:"crash_uploads"`
	}
	if st := e.get("/crash-uploads", &ups); st != 200 || ups.CrashUploads == nil {
		t.Fatalf("crash uploads: %d", st)
	}
}

func TestLogsStream(t *testing.T) {
	e, bus := newLogsEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/logs/stream?device=d1&severity=warn", nil)
	req.SetBasicAuth("admin", adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	rd.ReadString('\n') // the opening comment
	rd.ReadString('\n')
	waitUntil(t, 10*time.Second, "the log tail subscribed", func() bool { return bus.Subscribers() > 0 })
	ev := func(dev string, sevs ...int32) {
		var recs []lodestone.LogRecordJSON
		for _, s := range sevs {
			r := (&lodestone.LogRecord{Project: "p", DeviceID: dev, Severity: s, Body: `"x"`, Attributes: `{}`}).JSON()
			recs = append(recs, r)
		}
		data, _ := json.Marshal(recs)
		bus.Publish(context.Background(), lodestone.Event{Type: lodestone.EventLogs, DeviceID: dev, Data: data})
	}
	ev("d2", 17)    // other device: filtered out
	ev("d1", 9)     // below warn: filtered out
	ev("d1", 9, 17) // one record passes
	var lines []string
	for len(lines) < 3 {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSuffix(l, "\n"))
	}
	if lines[0] != "id: 3" || lines[1] != "event: logs" || !strings.HasPrefix(lines[2], "data: [") {
		t.Fatalf("event lines %q", lines)
	}
	var got []lodestone.LogRecordJSON
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[2], "data: ")), &got); err != nil || len(got) != 1 ||
		got[0].Severity != 17 || got[0].DeviceID != "d1" {
		t.Fatalf("event data %v %v", got, err)
	}
}
