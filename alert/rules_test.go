package alert_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/ingest"
)

// clock is the rules' clock, moved by the test; deliveries still go out on the wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ruleEnv is a database, a webhook receiver and the clock of one test.
type ruleEnv struct {
	t   *testing.T
	db  alertStore
	rc  *receiver
	url string
	clk *clock
	cfg alert.Config
}

func newRuleEnv(t *testing.T, open backend) *ruleEnv {
	db := open(t)
	t.Cleanup(func() { db.Close() })
	rc := &receiver{t: t, secret: "k"}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	return &ruleEnv{t: t, db: db, rc: rc, url: srv.URL + "/hook", clk: clk,
		cfg: alert.Config{Secret: "k", Now: clk.now, RulesEvery: time.Millisecond, Timeout: 5 * time.Second}}
}

// rule validates r as the API does and stores it.
func (e *ruleEnv) rule(r *lodestone.AlertRule) *lodestone.AlertRule {
	e.t.Helper()
	r.Webhooks, r.Enabled = []string{e.url}, true
	if bad := alert.ValidateRule(r); bad != nil {
		e.t.Fatalf("rule %q: %v", r.Name, bad)
	}
	if err := e.db.CreateAlertRule(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// deliveries are the queued and sent deliveries of one kind, oldest first.
func (e *ruleEnv) deliveries(kind string) []*lodestone.AlertDelivery {
	e.t.Helper()
	all, err := e.db.FindAlertDeliveries(context.Background(), lodestone.AlertFilter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*lodestone.AlertDelivery
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Kind == kind {
			out = append(out, all[i])
		}
	}
	return out
}

func (e *ruleEnv) alerts(ruleID int64) []*lodestone.Alert {
	e.t.Helper()
	as, err := e.db.FindAlerts(context.Background(), lodestone.AlertStateFilter{RuleID: ruleID})
	if err != nil {
		e.t.Fatal(err)
	}
	return as
}

func (e *ruleEnv) evaluate(svcs ...*alert.Service) {
	e.t.Helper()
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Go(func() {
			if err := s.Evaluate(context.Background()); err != nil {
				e.t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestCrashLoopSQLite(t *testing.T) { testCrashLoop(t, sqliteBackend(t), false) }
func TestCrashLoopPostgres(t *testing.T) {
	testCrashLoop(t, postgresBackend(t), true)
}

// testCrashLoop: a device faults 1,000 times; two replicas watch the events and evaluate the rules. Each rule
// sends one alert when it fires and one when it resolves.
func testCrashLoop(t *testing.T, open backend, twoPools bool) {
	ctx := context.Background()
	e := newRuleEnv(t, open)
	dbB := e.db
	if twoPools { // a second replica has its own connections to the same database
		dbB = open(t)
		defer dbB.Close()
	}
	bus := event.NewBroker(event.BrokerConfig{})
	defer bus.Close()
	cfg := e.cfg
	cfg.URLs, cfg.FaultQuiet = []string{e.url}, 10*time.Minute // ALERT_WEBHOOK_URL's default rules
	a, b := alert.New(cfg, e.db, e.db, bus), alert.New(cfg, dbB, dbB, bus)
	if err := a.SyncDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	issues := e.rule(&lodestone.AlertRule{Name: "issue over 100", Condition: lodestone.CondCrashIssueCount,
		Threshold: lodestone.AlertThreshold{Occurrences: 100}, Window: time.Hour})
	fresh := e.rule(&lodestone.AlertRule{Name: "new issues", Condition: lodestone.CondNewCrashIssue,
		Scope: lodestone.AlertScope{Type: lodestone.ScopeDevice, Value: "pump-7"}})
	wctx, stop := context.WithCancel(ctx)
	var watching sync.WaitGroup
	for _, s := range []*alert.Service{a, b} {
		watching.Go(func() { s.Watch(wctx) })
	}
	defer func() { stop(); watching.Wait() }()
	eventually(t, "both replicas watch", func() bool { return bus.Subscribers() == 2 })

	start := time.Now().UTC() // a second-long crash loop, after the rules were made
	var batches []*lodestone.DeviceBatch
	for i := range 1000 {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: "pump-7",
			ReceivedAt: start.Add(time.Duration(i) * time.Millisecond),
			Faults:     []lodestone.Fault{{FaultType: 3, Registers: lodestone.Registers{PC: 0x08001234}}}})
	}
	if err := e.db.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	for _, bt := range batches {
		for _, ev := range ingest.BatchEvents(nil, bt) {
			bus.Publish(ctx, ev)
		}
	}
	var rules []*lodestone.AlertRule
	rules, _ = e.db.FindAlertRules(ctx)
	var faultRule *lodestone.AlertRule
	for _, r := range rules {
		if r.Condition == lodestone.CondDeviceFault {
			faultRule = r
		}
	}
	eventually(t, "1000 faults counted on the device's alert", func() bool {
		as := e.alerts(faultRule.ID)
		return len(as) == 1 && as[0].Events == 1000
	})
	if d := e.deliveries(lodestone.AlertFault); len(d) != 1 {
		t.Fatalf("%d fault alerts for 1000 faults, want 1", len(d))
	}

	// The workers file the faults under one issue; both replicas evaluate at once (a leadership change).
	pending, err := e.db.PendingFaults(ctx, 2000)
	if err != nil || len(pending) != 1000 {
		t.Fatalf("pending %d %v", len(pending), err)
	}
	res := make([]lodestone.Symbolication, len(pending))
	title := "HardFault in pump_step"
	for i, f := range pending {
		res[i] = lodestone.Symbolication{FaultID: f.ID, Signature: "pump_step", Title: &title}
	}
	if _, err := e.db.SaveSymbolications(ctx, res); err != nil {
		t.Fatal(err)
	}
	e.clk.add(start.Sub(e.clk.now()) + 2*time.Second) // the rules look right after the loop
	for range 3 {
		e.evaluate(a, b)
	}
	if d := e.deliveries(lodestone.CondCrashIssueCount); len(d) != 1 {
		t.Fatalf("%d crash issue alerts, want 1", len(d))
	}
	if d := e.deliveries(lodestone.CondNewCrashIssue); len(d) != 1 {
		t.Fatalf("%d new-issue alerts, want 1", len(d))
	}
	if err := a.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.rc.bodies()
	if len(got) != 3 {
		t.Fatalf("receiver got %d alerts, want 3: %+v", len(got), got)
	}
	for _, bd := range got {
		if bd.State != "firing" {
			t.Fatalf("state %q in %+v", bd.State, bd)
		}
		switch bd.AlertType {
		case "fault":
			if bd.DeviceID != "pump-7" || bd.Rule != "default: device faults" {
				t.Fatalf("fault alert %+v", bd)
			}
		case "crash_issue_count":
			if !strings.Contains(bd.Summary, "1000 occurrences on 1 devices") || bd.RuleID != issues.ID ||
				bd.Details["occurrences"] != float64(1000) {
				t.Fatalf("issue alert %+v", bd)
			}
		case "new_crash_issue":
			if bd.RuleID != fresh.ID || !strings.Contains(bd.Summary, title) {
				t.Fatalf("new issue alert %+v", bd)
			}
		default:
			t.Fatalf("unexpected alert %+v", bd)
		}
	}

	// Quiet for longer than the fault rule's quiet period: the device's alert resolves, once, with the count.
	e.clk.add(11 * time.Minute)
	e.evaluate(a, b)
	e.evaluate(a, b)
	d := e.deliveries(lodestone.AlertFault)
	if len(d) != 2 || !strings.Contains(string(d[1].Body), `"state":"resolved"`) ||
		!strings.Contains(string(d[1].Body), "no fault for 10m0s (1000 faults since") {
		t.Fatalf("fault deliveries after the quiet period: %d, last %s", len(d), d[len(d)-1].Body)
	}
	// The issue is still above its threshold within the hour; once its faults leave the window it resolves.
	if d := e.deliveries(lodestone.CondCrashIssueCount); len(d) != 1 {
		t.Fatalf("issue alert resolved early: %d deliveries", len(d))
	}
	e.clk.add(2 * time.Hour)
	e.evaluate(a, b)
	e.evaluate(a, b)
	if d := e.deliveries(lodestone.CondCrashIssueCount); len(d) != 2 ||
		!strings.Contains(string(d[1].Body), `"state":"resolved"`) {
		t.Fatalf("issue deliveries after the window: %d", len(d))
	}
	if d := e.deliveries(lodestone.CondNewCrashIssue); len(d) != 1 {
		t.Fatalf("a new issue alerted %d times", len(d))
	}
	if err := a.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.rc.bodies()); n != 5 {
		t.Fatalf("receiver got %d alerts in all, want 5 (3 fired, 2 resolved)", n)
	}
}

func TestMetricRuleSQLite(t *testing.T)   { testMetricRule(t, sqliteBackend(t)) }
func TestMetricRulePostgres(t *testing.T) { testMetricRule(t, postgresBackend(t)) }

// testMetricRule: a temperature above 80 for 5 minutes fires at 5 minutes, not at 4, and resolves when it drops.
func testMetricRule(t *testing.T, open backend) {
	ctx := context.Background()
	e := newRuleEnv(t, open)
	svc := alert.New(e.cfg, e.db, e.db, nil)
	above := 80.0
	r := e.rule(&lodestone.AlertRule{Name: "pump-7 hot", Condition: lodestone.CondMetric,
		Scope:     lodestone.AlertScope{Type: lodestone.ScopeDevice, Value: "pump-7"},
		Threshold: lodestone.AlertThreshold{Metric: "temp_c", Above: &above}, Window: time.Minute,
		For: 5 * time.Minute})
	t0 := e.clk.now()
	sample := func(v float64) {
		at := e.clk.now().Add(-20 * time.Second)
		if err := e.db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "pump-7", ReceivedAt: at,
			Metrics: []lodestone.Metric{{Key: "temp_c", Type: lodestone.MetricGauge, Value: v, ReceivedAt: at}}}}); err != nil {
			t.Fatal(err)
		}
	}
	status := func() string {
		as := e.alerts(r.ID)
		if len(as) == 0 {
			return ""
		}
		return as[0].Status
	}
	// Hot from t0, checked every minute.
	for minute := 0; minute < 5; minute++ {
		sample(85)
		e.evaluate(svc)
		if st := status(); st != lodestone.AlertPending {
			t.Fatalf("after %d minutes hot: %q, want pending", minute, st)
		}
		if d := e.deliveries(lodestone.CondMetric); len(d) != 0 {
			t.Fatalf("alert sent after %d minutes, before its 5 minutes", minute)
		}
		e.clk.add(time.Minute)
	}
	sample(86)
	e.evaluate(svc)
	if st := status(); st != lodestone.AlertFiring || !e.alerts(r.ID)[0].FiredAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after 5 minutes hot: %q, want firing", st)
	}
	e.clk.add(time.Minute)
	sample(90)
	e.evaluate(svc)
	if d := e.deliveries(lodestone.CondMetric); len(d) != 1 || !strings.Contains(string(d[0].Body), `"state":"firing"`) ||
		!strings.Contains(string(d[0].Body), "temp_c averaged 86") {
		t.Fatalf("deliveries while hot: %d", len(d))
	}
	// Cooled: resolved once.
	e.clk.add(time.Minute)
	sample(70)
	e.evaluate(svc)
	e.evaluate(svc)
	d := e.deliveries(lodestone.CondMetric)
	if len(d) != 2 || !strings.Contains(string(d[1].Body), `"state":"resolved"`) || status() != lodestone.AlertResolved {
		t.Fatalf("after cooling: %d deliveries, state %q", len(d), status())
	}
	// Hot again at once: the pending period starts over, and a short spike does not fire.
	for range 3 {
		e.clk.add(time.Minute)
		sample(95)
		e.evaluate(svc)
	}
	e.clk.add(time.Minute)
	sample(60)
	e.evaluate(svc)
	if d := e.deliveries(lodestone.CondMetric); len(d) != 2 || status() != lodestone.AlertOK {
		t.Fatalf("a 3-minute spike: %d deliveries, state %q", len(d), status())
	}
	if err := svc.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.rc.bodies(); len(got) != 2 || got[0].DeviceID != "pump-7" || got[0].AlertType != "metric" {
		t.Fatalf("receiver got %+v", got)
	}
}

func TestCrashFreeRuleSQLite(t *testing.T)   { testCrashFreeRule(t, sqliteBackend(t)) }
func TestCrashFreeRulePostgres(t *testing.T) { testCrashFreeRule(t, postgresBackend(t)) }

// testCrashFreeRule: version 2.0 crashes every hour on every device; its crash-free rate falls below the
// threshold and the rule fires; a day later, the same devices run clean and it resolves.
func testCrashFreeRule(t *testing.T, open backend) {
	ctx := context.Background()
	e := newRuleEnv(t, open)
	sr, ok := e.db.(lodestone.StabilityReader)
	if !ok {
		t.Skipf("%T does not implement lodestone.StabilityReader yet (branch stability)", e.db)
	}
	svc := alert.New(e.cfg, e.db, e.db, nil)
	below := 90.0
	r := e.rule(&lodestone.AlertRule{Name: "2.0 stability", Condition: lodestone.CondCrashFreeRate,
		Scope:     lodestone.AlertScope{Type: lodestone.ScopeFirmware, Value: "2.0"},
		Threshold: lodestone.AlertThreshold{Below: &below, MinDeviceHours: 1}, Window: 12 * time.Hour})
	// Six hours of heartbeats every 10 minutes from four devices on 2.0; faults every hour on each.
	// Each round is its own write, as heartbeats minutes apart are.
	fleet := func(from time.Time, crash bool) {
		for k := 0; k <= 36; k++ {
			var bs []*lodestone.DeviceBatch
			for _, dev := range []string{"p1", "p2", "p3", "p4"} {
				at := from.Add(time.Duration(k) * 10 * time.Minute)
				b := &lodestone.DeviceBatch{DeviceID: dev, ReceivedAt: at,
					Info:       &lodestone.DeviceInfo{FirmwareVersion: "2.0"},
					Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(k) * 600_000}}}
				if crash && k%6 == 3 {
					b.Faults = []lodestone.Fault{{FaultType: 3, Registers: lodestone.Registers{PC: 0x0800_1000}}}
				}
				bs = append(bs, b)
			}
			if err := e.db.WriteTelemetry(ctx, bs); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := e.clk.now()
	fleet(now.Add(-6*time.Hour), true)
	rep, err := sr.Stability(ctx, lodestone.StabilityQuery{From: now.Add(-12 * time.Hour), To: now,
		Versions: []string{"2.0"}})
	if err != nil || len(rep.Versions) != 1 || rep.Versions[0].DeviceHours < 20 ||
		rep.Versions[0].CrashFreeHoursPct >= below {
		t.Fatalf("the crashing fleet's stability: %+v %v", rep, err)
	}
	e.evaluate(svc)
	e.evaluate(svc)
	d := e.deliveries(lodestone.CondCrashFreeRate)
	if len(d) != 1 || !strings.Contains(string(d[0].Body), `"state":"firing"`) ||
		!strings.Contains(string(d[0].Body), "Firmware 2.0:") {
		t.Fatalf("deliveries while crashing: %d; alerts %+v; report %+v", len(d), e.alerts(r.ID), rep)
	}
	as := e.alerts(r.ID)
	if len(as) != 1 || as[0].Key != "version:2.0" || as[0].Value != rep.Versions[0].CrashFreeHoursPct {
		t.Fatalf("alert %+v, report %+v", as, rep.Versions[0])
	}
	// A day later the devices ran clean for six hours: the rate is above the threshold again.
	e.clk.add(24 * time.Hour)
	now = e.clk.now()
	fleet(now.Add(-6*time.Hour), false)
	e.evaluate(svc)
	e.evaluate(svc)
	d = e.deliveries(lodestone.CondCrashFreeRate)
	if len(d) != 2 || !strings.Contains(string(d[1].Body), `"state":"resolved"`) {
		t.Fatalf("deliveries after recovery: %d", len(d))
	}
	if as := e.alerts(r.ID); as[0].Status != lodestone.AlertResolved {
		t.Fatalf("state after recovery: %+v", as[0])
	}
}

// A replica subscribes to the bus only while an event rule exists: a subscriber makes the PostgreSQL bus write
// the ingest stream.
func TestWatchSubscribesForEventRules(t *testing.T) {
	ctx := context.Background()
	e := newRuleEnv(t, sqliteBackend(t))
	bus := event.NewBroker(event.BrokerConfig{})
	defer bus.Close()
	svc := alert.New(e.cfg, e.db, e.db, bus)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Watch(wctx); close(done) }()
	defer func() { stop(); <-done }()
	e.rule(&lodestone.AlertRule{Name: "offline share", Condition: lodestone.CondDevicesOffline,
		Threshold: lodestone.AlertThreshold{Percent: 10}})
	time.Sleep(100 * time.Millisecond)
	if n := bus.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers with only a state rule", n)
	}
	r := e.rule(&lodestone.AlertRule{Name: "faults", Condition: lodestone.CondDeviceFault})
	eventually(t, "subscribed for the fault rule", func() bool { return bus.Subscribers() == 1 })
	if err := e.db.DeleteAlertRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	bus.Publish(ctx, ingest.DeviceOfflineEvent("d1"))
	eventually(t, "unsubscribed once the rule is gone", func() bool { return bus.Subscribers() == 0 })
}

// Watching tells a server when it may take traffic: closed once the watcher has subscribed when an event rule
// exists, and at once when none does; never before the subscription, or a fault sent at start is not alerted.
func TestWatchingClosesOnceSubscribed(t *testing.T) {
	for _, withRule := range []bool{true, false} {
		e := newRuleEnv(t, sqliteBackend(t))
		bus := event.NewBroker(event.BrokerConfig{})
		if withRule {
			e.rule(&lodestone.AlertRule{Name: "faults", Condition: lodestone.CondDeviceFault})
		}
		svc := alert.New(e.cfg, e.db, e.db, bus)
		select {
		case <-svc.Watching():
			t.Fatal("watching before Watch ran")
		default:
		}
		wctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { svc.Watch(wctx); close(done) }()
		select {
		case <-svc.Watching():
		case <-time.After(10 * time.Second):
			t.Fatalf("rule %v: Watching never closed", withRule)
		}
		want := 0
		if withRule {
			want = 1
		}
		if n := bus.Subscribers(); n != want {
			t.Errorf("rule %v: %d subscribers when Watching closed, want %d", withRule, n, want)
		}
		stop()
		<-done
		bus.Close()
	}
	// A stopped watcher releases whoever waits for it.
	e := newRuleEnv(t, sqliteBackend(t))
	svc := alert.New(e.cfg, e.db, e.db, nil)
	svc.Watch(context.Background())
	<-svc.Watching()
}
