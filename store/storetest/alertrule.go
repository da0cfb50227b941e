package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func alertRules(t *testing.T, s lodestone.Store) interface {
	lodestone.AlertRuleStore
	lodestone.AlertStore
} {
	t.Helper()
	o, ok := s.(interface {
		lodestone.AlertRuleStore
		lodestone.AlertStore
	})
	if !ok {
		t.Fatalf("%T does not implement lodestone.AlertRuleStore", s)
	}
	return o
}

func testAlertRules(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := alertRules(t, s)
	below := 99.5
	r := &lodestone.AlertRule{Name: "v2 stability", Condition: lodestone.CondCrashFreeRate,
		Scope:     lodestone.AlertScope{Type: lodestone.ScopeFirmware, Value: "2.0"},
		Threshold: lodestone.AlertThreshold{Below: &below, MinDeviceHours: 10}, Window: 24 * time.Hour,
		Quiet: time.Hour, Webhooks: []string{"https://a.example/x", "https://b.example/y"}, Enabled: true}
	if err := o.CreateAlertRule(ctx, r); err != nil || r.ID == 0 || r.Origin != lodestone.RuleFromAPI {
		t.Fatalf("create: %+v %v", r, err)
	}
	got, err := o.FindAlertRule(ctx, r.ID)
	if err != nil || got.Name != r.Name || got.Scope != r.Scope || *got.Threshold.Below != 99.5 ||
		got.Threshold.MinDeviceHours != 10 || got.Window != 24*time.Hour || got.Quiet != time.Hour ||
		len(got.Webhooks) != 2 || got.Webhooks[1] != "https://b.example/y" || !got.Enabled || got.CreatedAt.IsZero() {
		t.Fatalf("find: %+v %v", got, err)
	}
	dup := *r
	if err := o.CreateAlertRule(ctx, &dup); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("taken name: %v, want conflict", err)
	}
	other := &lodestone.AlertRule{Name: "faults", Condition: lodestone.CondDeviceFault,
		Scope: lodestone.AlertScope{Type: lodestone.ScopeFleet}, Quiet: time.Minute, Webhooks: []string{"http://c"}}
	if err := o.CreateAlertRule(ctx, other); err != nil {
		t.Fatal(err)
	}
	other.Name = r.Name
	if err := o.UpdateAlertRule(ctx, other); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	other.Name, other.Enabled = "faults renamed", true
	if err := o.UpdateAlertRule(ctx, other); err != nil || other.Name != "faults renamed" || !other.Enabled {
		t.Fatalf("update: %+v %v", other, err)
	}
	if err := o.UpdateAlertRule(ctx, &lodestone.AlertRule{ID: 9999, Name: "x", Webhooks: []string{"http://x"}}); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("update unknown: %v", err)
	}

	// Default rules: synced by name, changed in place, removed when no longer configured; an API rule keeps
	// its name.
	def := func(hook string) []*lodestone.AlertRule {
		return []*lodestone.AlertRule{
			{Name: "default: a", Condition: lodestone.CondDeviceFault, Scope: lodestone.AlertScope{Type: "fleet"},
				Quiet: time.Minute, Webhooks: []string{hook}, Enabled: true},
			{Name: "faults renamed", Condition: lodestone.CondDeviceOffline, Webhooks: []string{hook}, Enabled: true},
		}
	}
	if err := o.SyncAlertRules(ctx, lodestone.RuleFromConfig, def("http://one")); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncAlertRules(ctx, lodestone.RuleFromConfig, def("http://two")); err != nil {
		t.Fatal(err)
	}
	all, err := o.FindAlertRules(ctx)
	if err != nil || len(all) != 3 || all[2].Name != "default: a" || all[2].Origin != lodestone.RuleFromConfig ||
		all[2].Webhooks[0] != "http://two" || all[1].Condition != lodestone.CondDeviceFault {
		t.Fatalf("after sync: %d rules %v", len(all), err)
	}
	firstID := all[2].ID
	if err := o.SyncAlertRules(ctx, lodestone.RuleFromConfig, def("http://two")); err != nil {
		t.Fatal(err)
	}
	if again, _ := o.FindAlertRules(ctx); len(again) != 3 || again[2].ID != firstID {
		t.Fatalf("a second sync changed ids: %+v", again)
	}
	if err := o.SyncAlertRules(ctx, lodestone.RuleFromConfig, nil); err != nil {
		t.Fatal(err)
	}
	if all, _ = o.FindAlertRules(ctx); len(all) != 2 {
		t.Fatalf("after unsetting: %d rules", len(all))
	}

	// Deleting a rule takes its states; its deliveries stay in the log.
	if _, err := o.TransitionAlert(ctx, lodestone.AlertTransition{RuleID: r.ID, Key: "version:2.0",
		From: []string{lodestone.AlertNone}, To: lodestone.AlertFiring, At: at(0), Summary: "low",
		Deliveries: []*lodestone.AlertDelivery{delivery("crash_free_rate", "", "http://a", "rule:x", at(0))}}); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteAlertRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteAlertRule(ctx, r.ID); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("second delete: %v", err)
	}
	if st, _ := o.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID}); len(st) != 0 {
		t.Fatalf("states outlived their rule: %+v", st)
	}
	if ds, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{}); len(ds) != 1 {
		t.Fatalf("deliveries after delete: %d", len(ds))
	}
}

func testAlertTransitions(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := alertRules(t, s)
	r := &lodestone.AlertRule{Name: "faults", Condition: lodestone.CondDeviceFault, Quiet: time.Minute,
		Scope: lodestone.AlertScope{Type: lodestone.ScopeFleet}, Webhooks: []string{"http://a"}, Enabled: true}
	if err := o.CreateAlertRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	fire := func(at time.Time, key string) lodestone.AlertTransition {
		return lodestone.AlertTransition{RuleID: r.ID, Key: key, At: at, To: lodestone.AlertFiring,
			From:       []string{lodestone.AlertNone, lodestone.AlertOK, lodestone.AlertResolved},
			Summary:    "fault",
			Deliveries: []*lodestone.AlertDelivery{delivery("fault", "d1", "http://a", key+at.String(), at)}}
	}
	// Ten replicas race to fire the same alert: one does, and one delivery is queued.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 10 {
		wg.Go(func() {
			ok, err := o.TransitionAlert(ctx, fire(at(0), "d1"))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d replicas fired the alert, want 1", won)
	}
	if ds, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{}); len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	// Events on a firing alert are counted, not sent.
	for i := 1; i <= 5; i++ {
		if firing, err := o.TouchAlert(ctx, r.ID, "d1", at(i)); err != nil || !firing {
			t.Fatalf("touch %d: %v %v", i, firing, err)
		}
	}
	// The same event seen by a second replica is not counted twice.
	if firing, err := o.TouchAlert(ctx, r.ID, "d1", at(5)); err != nil || !firing {
		t.Fatalf("touch again: %v %v", firing, err)
	}
	if firing, _ := o.TouchAlert(ctx, r.ID, "d2", at(1)); firing {
		t.Fatal("an alert never fired reported firing")
	}
	st, err := o.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID, Status: lodestone.AlertFiring})
	if err != nil || len(st) != 1 || st[0].Events != 6 || !st[0].LastEvent.Equal(at(5)) || !st[0].FiredAt.Equal(at(0)) ||
		st[0].Summary != "fault" || !st[0].ResolvedAt.IsZero() {
		t.Fatalf("firing state %+v %v", st, err)
	}
	// Resolving waits for the alert to be idle: an event after the bound keeps it firing.
	resolve := lodestone.AlertTransition{RuleID: r.ID, Key: "d1", From: []string{lodestone.AlertFiring},
		To: lodestone.AlertResolved, At: at(10), IdleBefore: at(4)}
	if ok, err := o.TransitionAlert(ctx, resolve); err != nil || ok {
		t.Fatalf("resolved while not idle: %v %v", ok, err)
	}
	resolve.IdleBefore = at(5)
	if ok, err := o.TransitionAlert(ctx, resolve); err != nil || !ok {
		t.Fatalf("resolve: %v %v", ok, err)
	}
	if ok, _ := o.TransitionAlert(ctx, resolve); ok {
		t.Fatal("resolved twice")
	}
	// The quiet period refuses firing again too soon after resolving.
	again := fire(at(20), "d1")
	again.ResolvedBefore = at(5)
	if ok, _ := o.TransitionAlert(ctx, again); ok {
		t.Fatal("fired within the quiet period")
	}
	again.ResolvedBefore = at(10)
	if ok, err := o.TransitionAlert(ctx, again); err != nil || !ok {
		t.Fatalf("fire after the quiet period: %v %v", ok, err)
	}
	st, _ = o.FindAlerts(ctx, lodestone.AlertStateFilter{RuleID: r.ID})
	if len(st) != 1 || st[0].Status != lodestone.AlertFiring || st[0].Events != 1 || !st[0].FiredAt.Equal(at(20)) ||
		!st[0].ResolvedAt.Equal(at(10)) {
		t.Fatalf("refired state %+v", st)
	}
	// Pending, then cleared to ok without firing; no row means AlertNone only.
	pend := lodestone.AlertTransition{RuleID: r.ID, Key: "temp", From: []string{lodestone.AlertOK},
		To: lodestone.AlertPending, At: at(0), Value: 81}
	if ok, _ := o.TransitionAlert(ctx, pend); ok {
		t.Fatal("an alert with no state matched from ok")
	}
	pend.From = []string{lodestone.AlertNone}
	if ok, err := o.TransitionAlert(ctx, pend); err != nil || !ok {
		t.Fatalf("pending: %v %v", ok, err)
	}
	if ok, err := o.TransitionAlert(ctx, lodestone.AlertTransition{RuleID: r.ID, Key: "temp",
		From: []string{lodestone.AlertPending}, To: lodestone.AlertOK, At: at(1)}); err != nil || !ok {
		t.Fatalf("clear: %v %v", ok, err)
	}
	st, _ = o.FindAlerts(ctx, lodestone.AlertStateFilter{Status: lodestone.AlertOK})
	if len(st) != 1 || st[0].Key != "temp" || !st[0].FiredAt.IsZero() || !st[0].Since.Equal(at(1)) {
		t.Fatalf("ok state %+v", st)
	}
}

func testAlertScope(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := alertRules(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var batches []*lodestone.DeviceBatch
	for _, d := range []struct{ id, fw string }{{"a1", "1.0"}, {"a2", "1.0"}, {"b1", "2.0"}} {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: d.id, ReceivedAt: now.Add(-time.Hour),
			Info: &lodestone.DeviceInfo{FirmwareVersion: d.fw}})
	}
	if err := s.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	reg, ok := s.(lodestone.DeviceRegistry)
	gs, ok2 := s.(lodestone.GroupService)
	if !ok || !ok2 {
		t.Fatalf("%T lacks devices or groups", s)
	}
	tags := "pumps"
	if _, err := reg.UpdateDevice(ctx, "a1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	g := &lodestone.Group{Name: "site-b", CreatedAt: now}
	if err := gs.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := gs.AddGroupDevice(ctx, g.ID, "b1", now); err != nil {
		t.Fatal(err)
	}
	in := func(device string, sc lodestone.AlertScope) bool {
		ok, err := o.AlertDeviceInScope(ctx, device, sc)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, c := range []struct {
		device string
		sc     lodestone.AlertScope
		want   bool
	}{
		{"a1", lodestone.AlertScope{Type: lodestone.ScopeFleet}, true},
		{"zz", lodestone.AlertScope{Type: lodestone.ScopeFleet}, false},
		{"a1", lodestone.AlertScope{Type: lodestone.ScopeTag, Value: "pumps"}, true},
		{"a2", lodestone.AlertScope{Type: lodestone.ScopeTag, Value: "pumps"}, false},
		{"b1", lodestone.AlertScope{Type: lodestone.ScopeGroup, Value: "site-b"}, true},
		{"a1", lodestone.AlertScope{Type: lodestone.ScopeGroup, Value: "site-b"}, false},
		{"a2", lodestone.AlertScope{Type: lodestone.ScopeDevice, Value: "a2"}, true},
		{"a2", lodestone.AlertScope{Type: lodestone.ScopeFirmware, Value: "1.0"}, true},
		{"b1", lodestone.AlertScope{Type: lodestone.ScopeFirmware, Value: "1.0"}, false},
	} {
		if got := in(c.device, c.sc); got != c.want {
			t.Errorf("%s in %+v = %v, want %v", c.device, c.sc, got, c.want)
		}
	}
	om, ok := s.(lodestone.OfflineMarker)
	if !ok {
		t.Fatalf("%T lacks MarkOfflineDevices", s)
	}
	if _, err := om.MarkOfflineDevices(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "a2", ReceivedAt: now,
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if total, off, err := o.AlertScopeDevices(ctx, lodestone.AlertScope{Type: lodestone.ScopeFleet}); err != nil ||
		total != 3 || off != 2 {
		t.Fatalf("fleet: %d devices, %d offline, %v; want 3, 2", total, off, err)
	}
	if total, off, _ := o.AlertScopeDevices(ctx, lodestone.AlertScope{Type: lodestone.ScopeFirmware,
		Value: "1.0"}); total != 2 || off != 1 {
		t.Fatalf("firmware 1.0: %d devices, %d offline; want 2, 1", total, off)
	}

	// Crash activity: faults grouped into issues, counted in the window and the scope.
	var faults []*lodestone.DeviceBatch
	for i := range 5 {
		faults = append(faults, &lodestone.DeviceBatch{DeviceID: "a1", ReceivedAt: now.Add(time.Duration(i) * time.Second),
			Faults: []lodestone.Fault{{FaultType: 1, Registers: lodestone.Registers{PC: 0x100}}}})
	}
	faults = append(faults, &lodestone.DeviceBatch{DeviceID: "b1", ReceivedAt: now,
		Faults: []lodestone.Fault{{FaultType: 1, Registers: lodestone.Registers{PC: 0x100}}}},
		&lodestone.DeviceBatch{DeviceID: "a2", ReceivedAt: now.Add(-2 * time.Hour),
			Faults: []lodestone.Fault{{FaultType: 1, Registers: lodestone.Registers{PC: 0x100}}}})
	if err := s.WriteTelemetry(ctx, faults); err != nil {
		t.Fatal(err)
	}
	cs, ok := s.(lodestone.CrashService)
	if !ok {
		t.Fatalf("%T lacks crash groups", s)
	}
	pending, err := cs.PendingFaults(ctx, 100)
	if err != nil || len(pending) != 7 {
		t.Fatalf("pending faults %d %v", len(pending), err)
	}
	var res []lodestone.Symbolication
	for _, f := range pending {
		title := "HardFault in pump_step"
		res = append(res, lodestone.Symbolication{FaultID: f.ID, Signature: "sig-pump", Title: &title})
	}
	if _, err := cs.SaveSymbolications(ctx, res); err != nil {
		t.Fatal(err)
	}
	acts, err := o.AlertCrashActivity(ctx, lodestone.AlertScope{Type: lodestone.ScopeFleet}, now.Add(-time.Hour),
		now.Add(time.Hour))
	if err != nil || len(acts) != 1 || acts[0].Occurrences != 6 || acts[0].Devices != 2 ||
		acts[0].Title != "HardFault in pump_step" || acts[0].State != lodestone.CrashOpen || acts[0].IssueID == 0 {
		t.Fatalf("fleet activity %+v %v", acts, err)
	}
	acts, _ = o.AlertCrashActivity(ctx, lodestone.AlertScope{Type: lodestone.ScopeFirmware, Value: "1.0"},
		now.Add(-3*time.Hour), now.Add(time.Hour))
	if len(acts) != 1 || acts[0].Occurrences != 6 || acts[0].Devices != 2 {
		t.Fatalf("firmware 1.0 activity %+v", acts)
	}
	acts, _ = o.AlertCrashActivity(ctx, lodestone.AlertScope{Type: lodestone.ScopeGroup, Value: "site-b"},
		now.Add(-time.Hour), now.Add(time.Hour))
	if len(acts) != 1 || acts[0].Occurrences != 1 || acts[0].Devices != 1 {
		t.Fatalf("group activity %+v", acts)
	}
	if acts, _ = o.AlertCrashActivity(ctx, lodestone.AlertScope{Type: lodestone.ScopeFleet}, now.Add(time.Hour),
		now.Add(2*time.Hour)); len(acts) != 0 {
		t.Fatalf("empty window: %+v", acts)
	}
}
