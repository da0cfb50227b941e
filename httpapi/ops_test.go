package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/retention"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

type opsEnv struct {
	t   *testing.T
	srv *httptest.Server
	db  *sqlite.DB
}

func newOpsEnv(t *testing.T, cfg httpapi.Config) *opsEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBroker(event.BrokerConfig{})
	w := ingest.NewWriter(db, ingest.WriterConfig{Events: bus}, log)
	api := httpapi.New(cfg, httpapi.Deps{Ingest: ingest.NewService(w, ingest.Config{}, log), Devices: db,
		Telemetry: db, Auth: admin, Logger: log, Events: bus, Counts: db, Alerts: db, AlertRules: db,
		Retention: retention.New(db, 30, 3, log)})
	hs := api.HTTPServer("", context.Background())
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	t.Cleanup(func() {
		api.SetDraining()
		srv.Close()
		w.Close()
		db.Close()
	})
	return &opsEnv{t: t, srv: srv, db: db}
}

func (e *opsEnv) do(method, path string, admin bool) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	if admin {
		req.SetBasicAuth("admin", adminPass)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func value(mf *dto.MetricFamily) float64 {
	m := mf.GetMetric()[0]
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return -1
}

func TestPrometheus(t *testing.T) {
	e := newOpsEnv(t, httpapi.Config{})
	// A session (DeviceInfo, reboot, metrics, heartbeat) and a fault, then a refused login and an event stream.
	client := e.srv.Client()
	for _, body := range [][]byte{v("V1", "V4", "V5", "V2"), v("V1", "V7")} {
		resp, err := client.Post(e.srv.URL+"/ingest/chunks", "application/octet-stream", strings.NewReader(string(body)))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("ingest: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/devices", nil)
	req.SetBasicAuth("admin", "wrong")
	resp, _ := client.Do(req)
	resp.Body.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/events/stream", nil)
	req.SetBasicAuth("admin", adminPass)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	cancel()
	resp.Body.Close()

	if code, _, _ := e.do("GET", "/metrics/prometheus", false); code != 401 {
		t.Fatalf("without credentials: %d, want 401 (PUBLIC_METRICS is off)", code)
	}
	code, hdr, body := e.do("GET", "/metrics/prometheus", true)
	// ferrite's type; client_golang adds the name escaping scheme as a further parameter.
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8") {
		t.Fatalf("%d %q", code, hdr.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	want := []struct {
		name  string
		typ   dto.MetricType
		value float64
	}{
		{"ferrite_devices_total", dto.MetricType_GAUGE, 1},
		{"ferrite_devices_online", dto.MetricType_GAUGE, 1},
		{"ferrite_faults_total", dto.MetricType_GAUGE, 1},
		{"ferrite_metrics_total", dto.MetricType_GAUGE, 3},
		{"ferrite_reboots_total", dto.MetricType_GAUGE, 1},
		{"ferrite_groups_total", dto.MetricType_GAUGE, 0},
		{"ferrite_ingest_requests_total", dto.MetricType_COUNTER, 2},
		{"ferrite_ingest_chunks_total", dto.MetricType_COUNTER, 6},
		{"ferrite_auth_failures_total", dto.MetricType_COUNTER, 1},
		{"ferrite_sse_connections_total", dto.MetricType_COUNTER, 1},
	}
	for _, w := range want {
		mf := fams[w.name]
		if mf == nil {
			t.Errorf("%s missing", w.name)
			continue
		}
		if mf.GetType() != w.typ || value(mf) != w.value {
			t.Errorf("%s: %s %v, want %s %v", w.name, mf.GetType(), value(mf), w.typ, w.value)
		}
	}
	if h := fams["ferrite_devices_total"].GetHelp(); h != "Total number of registered devices." {
		t.Errorf("HELP %q", h)
	}
	lat := fams["lodestone_http_request_duration_seconds"]
	if lat == nil || lat.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("latency histogram: %v", lat)
	}
	found := map[string]uint64{}
	for _, m := range lat.GetMetric() {
		var route, code string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "route":
				route = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		found[route+" "+code] = m.GetHistogram().GetSampleCount()
	}
	if found["POST /ingest/chunks 200"] != 2 || found["GET /devices 401"] != 1 {
		t.Errorf("latency samples by route: %v", found)
	}
	if _, ok := found["GET /events/stream 200"]; ok {
		t.Error("event streams are not request latencies")
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("runtime metric %s missing", name)
		}
	}

	open := newOpsEnv(t, httpapi.Config{PublicMetrics: true})
	if code, _, _ := open.do("GET", "/metrics/prometheus", false); code != 200 {
		t.Fatalf("PUBLIC_METRICS: %d", code)
	}
}

func TestAdminRetention(t *testing.T) {
	e := newOpsEnv(t, httpapi.Config{})
	ctx := context.Background()
	now := time.Now()
	var batches []*lodestone.DeviceBatch
	for i := range 10 {
		at := now.Add(-40 * 24 * time.Hour)
		if i >= 7 {
			at = now
		}
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: "r", ReceivedAt: at,
			Metrics: []lodestone.Metric{{Key: "k"}}, Faults: []lodestone.Fault{{}}, Reboots: []lodestone.Reboot{{}}})
	}
	if err := e.db.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.do("GET", "/admin/retention", false); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	var got struct {
		Days    int              `json:"retention_days"`
		Enabled bool             `json:"enabled"`
		Counts  map[string]int64 `json:"counts"`
		LastRun *struct {
			Cutoff  string           `json:"cutoff"`
			Deleted map[string]int64 `json:"deleted"`
		} `json:"last_run"`
	}
	code, _, body := e.do("GET", "/admin/retention", true)
	if err := json.Unmarshal(body, &got); err != nil || code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got.Days != 30 || !got.Enabled || got.Counts["metrics"] != 10 || got.Counts["faults"] != 10 ||
		got.LastRun != nil {
		t.Fatalf("before: %s", body)
	}
	code, _, body = e.do("POST", "/admin/retention", true)
	if err := json.Unmarshal(body, &got); err != nil || code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got.Counts["metrics"] != 3 || got.Counts["reboots"] != 3 || got.LastRun == nil ||
		got.LastRun.Deleted["metrics"] != 7 || got.LastRun.Deleted["faults"] != 7 {
		t.Fatalf("after: %s", body)
	}
	// The run is kept for the next GET (on any replica).
	_, _, body = e.do("GET", "/admin/retention", true)
	if !strings.Contains(string(body), `"deleted":{`) {
		t.Fatalf("last run not shown: %s", body)
	}
}

func TestAlertDeliveryLog(t *testing.T) {
	e := newOpsEnv(t, httpapi.Config{})
	ctx := context.Background()
	if _, err := e.db.EnqueueAlerts(ctx, []*lodestone.AlertDelivery{{Kind: lodestone.AlertFault, DeviceID: "d",
		URL: "https://hooks.slack.com/services/T000/B000/very-secret", Body: []byte(`{"text":"hi"}`),
		DedupKey: "event:1"}}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.do("GET", "/admin/alerts/deliveries", false); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	code, _, body := e.do("GET", "/admin/alerts/deliveries", true)
	var got struct {
		Deliveries []map[string]any `json:"deliveries"`
	}
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || len(got.Deliveries) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	d := got.Deliveries[0]
	if d["alert_type"] != "fault" || d["status"] != "pending" || d["webhook"] != "https://hooks.slack.com/…" ||
		d["body"].(map[string]any)["text"] != "hi" || d["next_attempt_at"] == nil {
		t.Fatalf("delivery %s", body)
	}
	if strings.Contains(string(body), "very-secret") {
		t.Fatal("the webhook's secret path is shown")
	}
	if code, _, body := e.do("GET", "/admin/alerts/deliveries?status=delivered", true); code != 200 ||
		!strings.Contains(string(body), `"deliveries":[]`) {
		t.Fatalf("status filter: %d %s", code, body)
	}
	if code, _, body := e.do("GET", "/admin/alerts/deliveries?status=bogus", true); code != 400 ||
		!strings.Contains(string(body), "status must be") {
		t.Fatalf("bad status: %d %s", code, body)
	}
}
