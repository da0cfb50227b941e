package storetest

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// opsStore is what the operations features need of a backend: both backends implement it.
type opsStore interface {
	lodestone.AlertStore
	lodestone.RetentionStore
	lodestone.FleetCounter
}

func ops(t *testing.T, s lodestone.Store) opsStore {
	t.Helper()
	o, ok := s.(opsStore)
	if !ok {
		t.Fatalf("%T does not implement the alert, retention and count stores", s)
	}
	return o
}

func delivery(kind, device, url, key string, at time.Time) *lodestone.AlertDelivery {
	return &lodestone.AlertDelivery{Kind: kind, DeviceID: device, URL: url, Body: []byte(`{"text":"` + key + `"}`),
		DedupKey: key, CreatedAt: at}
}

func testAlertQueue(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := ops(t, s)
	// Two webhooks for one fault, and the same event again from a second replica: queued once per webhook.
	n, err := o.EnqueueAlerts(ctx, []*lodestone.AlertDelivery{
		delivery(lodestone.AlertFault, "d1", "http://a", "ev:1", at(0)),
		delivery(lodestone.AlertFault, "d1", "http://b", "ev:1", at(0)),
	})
	if err != nil || n != 2 {
		t.Fatalf("enqueue = %d, %v; want 2", n, err)
	}
	if n, err := o.EnqueueAlerts(ctx, []*lodestone.AlertDelivery{
		delivery(lodestone.AlertFault, "d1", "http://a", "ev:1", at(1))}); err != nil || n != 0 {
		t.Fatalf("duplicate enqueue = %d, %v; want 0", n, err)
	}
	// Nothing is due before its time.
	if got, err := o.ClaimAlerts(ctx, at(-1), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed %d before due, %v", len(got), err)
	}
	got, err := o.ClaimAlerts(ctx, at(1), time.Minute, 10)
	if err != nil || len(got) != 2 || got[0].URL != "http://a" || got[1].URL != "http://b" ||
		string(got[0].Body) != `{"text":"ev:1"}` || got[0].Status != lodestone.DeliveryPending || got[0].Kind != "fault" {
		t.Fatalf("claim = %+v, %v", got, err)
	}
	// Claimed rows are hidden from a second claimer until the lease ends.
	if again, _ := o.ClaimAlerts(ctx, at(2), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed %d rows twice", len(again))
	}
	a, b := got[0], got[1]
	if err := o.FinishAlert(ctx, a.ID, false, 503, "receiver down", at(2), at(12)); err != nil {
		t.Fatal(err)
	}
	if err := o.FinishAlert(ctx, b.ID, true, 200, "", at(2), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := o.FinishAlert(ctx, b.ID, true, 200, "", at(2), time.Time{}); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("finishing a delivered alert again: %v", err)
	}
	if again, _ := o.ClaimAlerts(ctx, at(11), time.Minute, 10); len(again) != 0 {
		t.Fatalf("retry claimed before its backoff ended")
	}
	retry, err := o.ClaimAlerts(ctx, at(12), time.Minute, 10)
	if err != nil || len(retry) != 1 || retry[0].ID != a.ID || retry[0].Attempts != 1 || retry[0].LastStatus != 503 ||
		retry[0].LastError != "receiver down" {
		t.Fatalf("retry claim = %+v, %v", retry, err)
	}
	// A lease that ran out (the sender died) makes the row claimable again.
	if re, _ := o.ClaimAlerts(ctx, at(12).Add(2*time.Minute), time.Minute, 10); len(re) != 1 || re[0].ID != a.ID {
		t.Fatalf("expired lease: %+v", re)
	}
	if err := o.FinishAlert(ctx, a.ID, false, 0, "connection refused", at(200), time.Time{}); err != nil {
		t.Fatal(err)
	}
	log, err := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{})
	if err != nil || len(log) != 2 || log[0].ID != b.ID {
		t.Fatalf("log = %+v, %v", log, err)
	}
	if log[0].Status != lodestone.DeliveryDelivered || log[0].DeliveredAt == nil || !log[0].DeliveredAt.Equal(at(2)) ||
		log[0].Attempts != 1 || log[1].Status != lodestone.DeliveryFailed || log[1].Attempts != 2 ||
		log[1].DeliveredAt != nil || !log[1].CreatedAt.Equal(at(0)) {
		t.Fatalf("log states: %+v / %+v", log[0], log[1])
	}
	failed, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{Status: lodestone.DeliveryFailed})
	if len(failed) != 1 || failed[0].ID != a.ID {
		t.Fatalf("failed filter: %+v", failed)
	}
	if page, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{Limit: 1, Offset: 1}); len(page) != 1 ||
		page[0].ID != a.ID {
		t.Fatalf("paging: %+v", page)
	}
}

func testAlertBackOnline(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := ops(t, s)
	write(t, s, &lodestone.DeviceBatch{DeviceID: "gone", ReceivedAt: at(0)},
		&lodestone.DeviceBatch{DeviceID: "other", ReceivedAt: at(0)})
	if _, err := s.MarkOfflineDevices(ctx, at(100)); err != nil {
		t.Fatal(err)
	}
	off := func(dev, key string) {
		t.Helper()
		if _, err := o.EnqueueAlerts(ctx, []*lodestone.AlertDelivery{
			delivery(lodestone.AlertDeviceOffline, dev, "http://a", key, at(100))}); err != nil {
			t.Fatal(err)
		}
	}
	off("gone", "off:gone")
	off("other", "off:other")
	build := func(dev string, offAt time.Time) []*lodestone.AlertDelivery {
		if !offAt.Equal(at(100)) {
			t.Errorf("offline time %v", offAt)
		}
		return []*lodestone.AlertDelivery{delivery(lodestone.AlertDeviceOnline, dev, "http://a", "on:"+dev, at(0))}
	}
	if ids, err := o.AlertsBackOnline(ctx, build); err != nil || len(ids) != 0 {
		t.Fatalf("back online while still offline: %v %v", ids, err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "gone", ReceivedAt: at(200)})
	ids, err := o.AlertsBackOnline(ctx, build)
	if err != nil || len(ids) != 1 || ids[0] != "gone" {
		t.Fatalf("back online = %v, %v", ids, err)
	}
	if ids, _ := o.AlertsBackOnline(ctx, build); len(ids) != 0 {
		t.Fatalf("a return reported twice: %v", ids)
	}
	// A late duplicate of the offline alert neither queues again nor watches again.
	off("gone", "off:gone")
	if ids, _ := o.AlertsBackOnline(ctx, build); len(ids) != 0 {
		t.Fatalf("duplicate offline event re-armed the watch: %v", ids)
	}
	log, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{})
	var kinds []string
	for _, d := range log {
		kinds = append(kinds, d.Kind+":"+d.DeviceID)
	}
	sort.Strings(kinds)
	if len(kinds) != 3 || kinds[0] != "device_offline:gone" || kinds[1] != "device_offline:other" ||
		kinds[2] != "device_online:gone" {
		t.Fatalf("queued %v", kinds)
	}
}

func testRetention(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := ops(t, s)
	if _, err := o.LastRetentionRun(ctx); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("last run before any: %v", err)
	}
	batch := func(sec int) *lodestone.DeviceBatch {
		return &lodestone.DeviceBatch{DeviceID: "r", ReceivedAt: at(sec),
			Metrics:        []lodestone.Metric{{Key: "k", Type: lodestone.MetricCounter, Value: 1}, {Key: "k", Value: 2}},
			Faults:         []lodestone.Fault{{FaultType: 1}},
			Reboots:        []lodestone.Reboot{{Reason: 2}},
			Heartbeats:     []lodestone.Heartbeat{{UptimeTicks: 1}},
			OtaRequests:    []lodestone.OtaRequest{{BuildID: 1}},
			TraceFragments: []lodestone.TraceFragment{{Offset: 0, Data: []byte("x"), Last: true}},
		}
	}
	for sec := range 5 { // five old batches
		write(t, s, batch(sec))
	}
	write(t, s, batch(1000), &lodestone.DeviceBatch{DeviceID: "r", ReceivedAt: at(1),
		TraceFragments: []lodestone.TraceFragment{{Offset: 4, Data: []byte("y")}}}) // an old unfinished trace
	if _, err := o.EnqueueAlerts(ctx, []*lodestone.AlertDelivery{
		delivery("fault", "r", "http://a", "old-done", at(0)), delivery("fault", "r", "http://a", "old-pending", at(0))}); err != nil {
		t.Fatal(err)
	}
	claimed, _ := o.ClaimAlerts(ctx, at(0), time.Minute, 1)
	if len(claimed) != 1 {
		t.Fatal("claim")
	}
	if err := o.FinishAlert(ctx, claimed[0].ID, true, 200, "", at(0), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "counted"}); err != nil {
		t.Fatal(err)
	}
	c, err := o.FleetCounts(ctx)
	if err != nil || c.Devices != 1 || c.DevicesOnline != 1 || c.Faults != 6 || c.Metrics != 12 || c.Reboots != 6 ||
		c.Groups != 1 {
		t.Fatalf("counts before = %+v, %v", c, err)
	}
	// A batch of 2 rows forces several transactions per table.
	deleted, err := o.PurgeBefore(ctx, at(500), 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"metrics": 10, "faults": 5, "reboots": 5, "heartbeats": 5, "ota_requests": 5,
		"traces": 5, "trace_fragments": 1, "alert_deliveries": 1}
	for k, v := range want {
		if deleted[k] != v {
			t.Errorf("deleted %d %s, want %d (all: %v)", deleted[k], k, v, deleted)
		}
	}
	c, _ = o.FleetCounts(ctx)
	if c.Devices != 1 || c.Faults != 1 || c.Metrics != 2 || c.Reboots != 1 {
		t.Fatalf("counts after = %+v", c)
	}
	hb, _ := s.FindHeartbeats(ctx, lodestone.TelemetryFilter{})
	tr, _ := s.FindTraces(ctx, lodestone.TelemetryFilter{})
	if len(hb) != 1 || !hb[0].ReceivedAt.Equal(at(1000)) || len(tr) != 1 {
		t.Fatalf("kept heartbeats %d traces %d", len(hb), len(tr))
	}
	if log, _ := o.FindAlertDeliveries(ctx, lodestone.AlertFilter{}); len(log) != 1 || log[0].DedupKey != "old-pending" {
		t.Fatalf("a pending delivery was purged: %+v", log)
	}
	if again, _ := o.PurgeBefore(ctx, at(500), 2); again["metrics"] != 0 || again["faults"] != 0 {
		t.Fatalf("second purge deleted %v", again)
	}
	run := &lodestone.PurgeResult{Cutoff: at(500), Started: at(600), Finished: at(601), Deleted: deleted}
	if err := o.SaveRetentionRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	run.Error = "second"
	if err := o.SaveRetentionRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	last, err := o.LastRetentionRun(ctx)
	if err != nil || !last.Cutoff.Equal(at(500)) || last.Deleted["metrics"] != 10 || last.Error != "second" {
		t.Fatalf("last run = %+v, %v", last, err)
	}
}

// testRetentionFleetHealth: retention also empties what fleet health derives from telemetry (the hourly stability
// rollups and the device events of timelines), an hour's rollup only once the whole hour is older than the cutoff.
func testRetentionFleetHealth(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	o := ops(t, s)
	post := func(sec int, version string, faults int) {
		b := &lodestone.DeviceBatch{DeviceID: "rh", ReceivedAt: at(sec), Info: info(version, 1)}
		for range faults {
			b.Faults = append(b.Faults, lodestone.Fault{FaultType: 1})
		}
		write(t, s, b)
	}
	post(0, "1.0", 0)
	post(600, "1.0", 1)
	post(3*3600, "1.1", 0) // an upgrade: a firmware event in the timeline
	post(3*3600+600, "1.1", 1)
	faults := func() int {
		rep, err := s.Stability(ctx, lodestone.StabilityQuery{From: at(0), To: at(4 * 3600)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range rep.Versions {
			n += v.Faults
		}
		return n
	}
	firmwareEvents := func() int {
		p, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "rh", Limit: 100, LogWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range p.Entries {
			if e.Kind == "firmware" {
				n++
			}
		}
		return n
	}
	if f, fw := faults(), firmwareEvents(); f != 2 || fw != 2 {
		t.Fatalf("before the purge: %d faults in the rollups, %d firmware events; want 2 and 2", f, fw)
	}
	// The cutoff is inside hour 1: hour 0 is wholly older and goes, hour 3 stays.
	deleted, err := o.PurgeBefore(ctx, at(3600+1800), 1)
	if err != nil {
		t.Fatal(err)
	}
	if deleted["stability_hours"] != 1 || deleted["device_events"] < 1 {
		t.Fatalf("deleted %v; want hour 0's rollup and the first firmware event", deleted)
	}
	if f, fw := faults(), firmwareEvents(); f != 1 || fw != 1 {
		t.Fatalf("after the purge: %d faults in the rollups, %d firmware events; want 1 and 1", f, fw)
	}
	// A cutoff inside an hour keeps that hour's rollup.
	if deleted, err := o.PurgeBefore(ctx, at(3*3600+1800), 10); err != nil || deleted["stability_hours"] != 0 {
		t.Fatalf("a purge inside hour 3 deleted %v (%v)", deleted, err)
	}
}
