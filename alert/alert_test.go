package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// alertStore is what a backend gives the alert service.
type alertStore interface {
	lodestone.Store
	alert.Store
}

// backend opens (and, called again, reopens) one database.
type backend func(t *testing.T) alertStore

func sqliteBackend(t *testing.T) backend {
	path := filepath.Join(t.TempDir(), "lodestone.db")
	return func(t *testing.T) alertStore {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
}

func postgresBackend(t *testing.T) backend {
	url := pgtest.URL(t)
	return func(t *testing.T) alertStore {
		db, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
}

func TestAlertsSQLite(t *testing.T)   { testAlerts(t, sqliteBackend(t)) }
func TestAlertsPostgres(t *testing.T) { testAlerts(t, postgresBackend(t)) }

// receiver is a real webhook endpoint that records what it gets and checks signatures.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	got    []alert.Body
	ids    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ts int64
	json.Unmarshal([]byte(r.Header.Get(alert.HeaderTimestamp)), &ts)
	if sig := r.Header.Get(alert.HeaderSignature); sig != alert.Sign(rc.secret, ts, body) {
		rc.t.Errorf("bad signature %q", sig)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b alert.Body
	if err := json.Unmarshal(body, &b); err != nil {
		rc.t.Errorf("body %s: %v", body, err)
	}
	rc.mu.Lock()
	rc.got = append(rc.got, b)
	rc.ids = append(rc.ids, r.Header.Get(alert.HeaderDelivery))
	rc.mu.Unlock()
}

func (rc *receiver) bodies() []alert.Body {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]alert.Body(nil), rc.got...)
}

// eventually polls cond until it holds, failing after a generous deadline (the condition, not the time, is tested).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// running is one sender process: Watch and Run until stopped.
type running struct {
	svc  *alert.Service
	stop context.CancelFunc
	done sync.WaitGroup
}

func start(cfg alert.Config, db alertStore, bus lodestone.EventBus) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: alert.New(cfg, db, db, bus), stop: cancel}
	r.done.Go(func() { r.svc.Watch(ctx) })
	r.done.Go(func() { r.svc.Run(ctx) })
	return r
}

func (r *running) close() { r.stop(); r.done.Wait() }

func testAlerts(t *testing.T, open backend) {
	ctx := context.Background()
	db := open(t)
	bus := event.NewBroker(event.BrokerConfig{})
	defer bus.Close()

	// The receiver's address is reserved and released: it is down (connection refused) until it starts later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// ALERT_WEBHOOK_URL's default rules alert on what lodestone alerted on before rules existed.
	cfg := alert.Config{URLs: []string{"http://" + addr + "/hook"}, Secret: "s3cret", OfflineMinutes: 10,
		Every: 20 * time.Millisecond, Backoff: 30 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		MaxAttempts: 1000, Timeout: 2 * time.Second, Evaluate: 20 * time.Millisecond}

	sender := start(cfg, db, bus)
	// Subscribers are in place before anything is published.
	eventually(t, "watch subscribed", func() bool { return bus.Subscribers() == 1 })
	fault := &lodestone.DeviceBatch{DeviceID: "pump-7", ReceivedAt: time.Now(),
		Faults: []lodestone.Fault{{FaultType: 3, Registers: lodestone.Registers{PC: 0x08001234}}}}
	if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{fault}); err != nil {
		t.Fatal(err)
	}
	for _, e := range ingest.BatchEvents(nil, fault) {
		bus.Publish(ctx, e)
	}
	var log []*lodestone.AlertDelivery
	eventually(t, "failed attempts while the receiver is down", func() bool {
		log, _ = db.FindAlertDeliveries(ctx, lodestone.AlertFilter{})
		return len(log) == 1 && log[0].Attempts >= 2
	})
	if log[0].Status != lodestone.DeliveryPending || log[0].LastError == "" || log[0].Kind != lodestone.AlertFault {
		t.Fatalf("while down: %+v", log[0])
	}

	// Restart: the sender stops and the database closes; a new process opens it and the receiver comes up.
	sender.close()
	db.Close()
	db = open(t)
	defer db.Close()
	rc := &receiver{t: t, secret: "s3cret"}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	defer srv.Close()
	sender = start(cfg, db, bus)
	defer sender.close()

	eventually(t, "the queued fault alert delivered after the restart", func() bool { return len(rc.bodies()) == 1 })
	b := rc.bodies()[0]
	if b.AlertType != "fault" || b.DeviceID != "pump-7" || b.State != "firing" || b.Rule != "default: device faults" ||
		b.Summary != "Fault on device pump-7: type=3, pc=0x08001234 (unknown)" ||
		b.Text != ":warning: "+b.Summary || b.Content != b.Text || b.Details["pc"] != "0x08001234" {
		t.Fatalf("fault alert %+v", b)
	}
	if _, err := time.Parse(time.RFC3339, b.Timestamp); err != nil {
		t.Fatalf("timestamp %q: %v", b.Timestamp, err)
	}
	eventually(t, "delivery recorded", func() bool {
		log, _ = db.FindAlertDeliveries(ctx, lodestone.AlertFilter{Status: lodestone.DeliveryDelivered})
		return len(log) == 1
	})
	if log[0].LastStatus != 200 || log[0].DeliveredAt == nil || log[0].Attempts < 3 {
		t.Fatalf("delivered row %+v", log[0])
	}

	// Offline, then back online: one alert each, and a device_online event.
	online, err := bus.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "watch subscribed", func() bool { return bus.Subscribers() == 2 })
	ids, err := db.MarkOfflineDevices(ctx, time.Now().Add(time.Second))
	if err != nil || len(ids) != 1 {
		t.Fatalf("mark offline %v %v", ids, err)
	}
	bus.Publish(ctx, ingest.DeviceOfflineEvent("pump-7"))
	eventually(t, "offline alert", func() bool { return len(rc.bodies()) == 2 })
	if b := rc.bodies()[1]; b.AlertType != "device_offline" || b.Text[:len(":red_circle:")] != ":red_circle:" ||
		b.Details["offline_threshold_minutes"] != float64(10) {
		t.Fatalf("offline alert %+v", b)
	}
	if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "pump-7", ReceivedAt: time.Now(),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 5}}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "back-online alert", func() bool { return len(rc.bodies()) == 3 })
	if b := rc.bodies()[2]; b.AlertType != "device_online" || b.DeviceID != "pump-7" || b.State != "resolved" {
		t.Fatalf("online alert %+v", b)
	}
	for deadline := time.After(20 * time.Second); ; {
		var e lodestone.Event
		select {
		case e = <-online:
		case <-deadline:
			t.Fatal("no device_online event for pump-7 within 20s")
		}
		if e.Type == lodestone.EventDeviceOnline && e.DeviceID == "pump-7" {
			break
		}
	}
	// Nothing more is sent: each alert exactly once.
	sender.svc.Tick(ctx)
	if n := len(rc.bodies()); n != 3 {
		t.Fatalf("%d alerts received, want 3", n)
	}
	if rc.ids[0] == rc.ids[1] || rc.ids[1] == rc.ids[2] {
		t.Fatalf("delivery ids %v", rc.ids)
	}

	// A rollout that halted itself and a crash regression alert too (data as ota and crash publish it).
	bus.Publish(ctx, lodestone.Event{Type: ota.EventCampaignHalted, Time: time.Now(),
		Data: json.RawMessage(`{"campaign_id":4,"name":"v2 canary","reason":"crash rate 3.0x the old firmware's"}`)})
	eventually(t, "campaign alert", func() bool { return len(rc.bodies()) == 4 })
	if b := rc.bodies()[3]; b.AlertType != "ota_campaign_halted" || b.Details["campaign_id"] != float64(4) ||
		b.Summary != `OTA campaign #4 "v2 canary" halted: crash rate 3.0x the old firmware's` {
		t.Fatalf("campaign alert %+v", b)
	}
	bus.Publish(ctx, lodestone.Event{Type: crash.EventCrashRegression, DeviceID: "pump-7", Time: time.Now(),
		Data: json.RawMessage(`{"crash_group_id":9,"title":"HardFault in write_register","firmware_version":"1.3",` +
			`"resolved_version":"1.2","fault_id":77,"occurrence_count":5}`)})
	eventually(t, "regression alert", func() bool { return len(rc.bodies()) == 5 })
	if b := rc.bodies()[4]; b.AlertType != "crash_regression" || b.DeviceID != "pump-7" ||
		b.Details["crash_group_id"] != float64(9) || b.Details["resolved_version"] != "1.2" {
		t.Fatalf("regression alert %+v", b)
	}
}

func TestBackoffAndURLs(t *testing.T) {
	if _, err := alert.ParseURLs("http://ok/x, ftp://no"); err == nil {
		t.Fatal("ftp URL accepted")
	}
	u, err := alert.ParseURLs(" https://hooks.slack.com/services/T/B/secret ,http://127.0.0.1:9/x,")
	if err != nil || len(u) != 2 {
		t.Fatalf("%v %v", u, err)
	}
	if _, err := alert.ParseURLs("gopher://hooks.example/secret-token"); err == nil ||
		strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("error leaks the URL path: %v", err)
	}
	// Python: hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
	if got := alert.Sign("k", 1700000000, []byte(`{}`)); got != "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146" {
		t.Fatalf("signature %q", got)
	}
}
