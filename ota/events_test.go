package ota_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

type recorder struct {
	mu  sync.Mutex
	evs []lodestone.Event
}

func (r *recorder) Publish(_ context.Context, e lodestone.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
	return nil
}

// take returns the events published since the last call, as "type/why" (or "type/status" for progress).
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		var d map[string]any
		json.Unmarshal(e.Data, &d)
		switch e.Type {
		case ota.EventCampaign:
			out = append(out, e.Type+"/"+d["why"].(string))
		case ota.EventProgress:
			out = append(out, e.Type+"/"+e.DeviceID+"/"+d["status"].(string))
		default:
			out = append(out, e.Type)
		}
	}
	r.evs = nil
	return out
}

// TestCampaignEvents checks what a page following a campaign is told: each operator action, a tick that changed
// the campaign (here an install confirmed by a device's DeviceInfo, which publishes nothing itself), nothing from a
// tick that changed nothing, and each report that moved a device.
func TestCampaignEvents(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var batches []*lodestone.DeviceBatch
	for _, id := range []string{"a", "b"} {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: now,
			Info: &lodestone.DeviceInfo{FirmwareVersion: "1.0"}})
	}
	if err := db.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	fw := &lodestone.Firmware{Version: "2.0", SHA256: "0000000000000000000000000000000000000000000000000000000000000001",
		Size: 1, Filename: "2.0.bin", CreatedAt: now}
	if err := db.CreateFirmware(ctx, fw); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc := ota.NewService(db, db, ota.Config{Events: rec, Now: func() time.Time { return now }})
	camps := ota.NewCampaigns(svc)
	c, _, err := camps.Create(ctx, ota.CampaignSpec{Name: "c", FirmwareID: fw.ID, Waves: []int{100}})
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, fn func() error, want ...string) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := rec.take()
		if len(got) != len(want) {
			t.Fatalf("%s published %v, want %v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s published %v, want %v", what, got, want)
			}
		}
	}
	tick := func() error { return camps.Tick(ctx) }
	step("activate", func() error { _, err := camps.Activate(ctx, c.ID); return err }, "ota_campaign/activate")
	step("first tick", tick, "ota_campaign/tick") // nothing seen before: a page opened now learns the state
	step("idle tick", tick)
	step("report", func() error {
		_, err := svc.Report(ctx, lodestone.OTAReport{DeviceID: "a", Status: lodestone.OTADownloading})
		return err
	}, "ota_progress/a/downloading")
	step("tick after the report", tick, "ota_campaign/tick")
	step("confirm by DeviceInfo", func() error {
		_, _, err := svc.Observe(ctx, "b", &lodestone.DeviceInfo{FirmwareVersion: "2.0"})
		return err
	})
	step("tick after the confirmation", tick, "ota_campaign/tick")
	step("idle tick again", tick)
	step("report of a device in no campaign", func() error {
		_, err := svc.Report(ctx, lodestone.OTAReport{DeviceID: "stranger", Status: lodestone.OTAFailed})
		return err
	})
	step("pause", func() error { return camps.Pause(ctx, c.ID) }, "ota_campaign/pause")
	step("tick while paused", tick)
	step("abort", func() error { _, err := camps.Abort(ctx, c.ID); return err }, "ota_campaign/abort")
}
