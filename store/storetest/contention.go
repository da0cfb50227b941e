package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// testDeviceContention runs what touches device rows at once, the way a busy server does: the ingest writer
// bringing devices back online in multi-device batches, the offline sweep, edits, group membership,
// symbolication and deletes. Each may find its device gone or already changed (not found, conflict), but none
// may fail: on PostgreSQL two transactions that lock the same rows in different orders deadlock, and one of them
// is aborted with an internal error.
func testDeviceContention(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	const devices, rounds = 16, 12
	name := func(i int) string { return fmt.Sprintf("c%02d", i%devices) }
	for i := range devices {
		write(t, s, &lodestone.DeviceBatch{DeviceID: name(i), ReceivedAt: at(0), Info: info("1.0.0", 1)})
	}
	g := &lodestone.Group{Name: "contention", CreatedAt: at(0)}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	allowed := func(err error) bool {
		switch {
		case err == nil, errors.Is(err, lodestone.ErrAlreadyInGroup), errors.Is(err, lodestone.ErrGroupOrDevice):
			return true
		}
		c := lodestone.ErrorCode(err)
		return c == lodestone.ENOTFOUND || c == lodestone.ECONFLICT
	}
	var mu sync.Mutex
	var failures []string
	fail := func(what string, err error) {
		if !allowed(err) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf("%s: %v", what, err))
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for r := range rounds {
		sec := 100 * (r + 1)
		// Two writers, each bringing back the whole fleet in one batch (in opposite orders: the store orders them).
		for w := range 2 {
			wg.Go(func() {
				var bs []*lodestone.DeviceBatch
				for i := range devices {
					k := i
					if w == 1 {
						k = devices - 1 - i
					}
					var inf *lodestone.DeviceInfo // the second writer's sessions carry no DeviceInfo for most
					if w == 0 || k%3 == 0 {
						inf = info(fmt.Sprintf("1.%d.0", r), uint64(r))
					}
					bs = append(bs, &lodestone.DeviceBatch{DeviceID: name(k), ReceivedAt: at(sec + w), Info: inf,
						Faults:  []lodestone.Fault{crashFault(0x08000200 + uint32(k))},
						Metrics: []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: float64(k)}}})
				}
				fail("write telemetry", s.WriteTelemetry(ctx, bs))
			})
		}
		wg.Go(func() {
			_, err := s.MarkOfflineDevices(ctx, at(sec+50))
			fail("mark offline", err)
		})
		wg.Go(func() {
			for i := range devices {
				n := fmt.Sprintf("unit %d/%d", i, r)
				_, err := s.UpdateDevice(ctx, name(devices-1-i), lodestone.DeviceUpdate{Name: &n, Tags: &n})
				fail("update device", err)
			}
		})
		wg.Go(func() {
			for i := range devices {
				fail("add to group", s.AddGroupDevice(ctx, g.ID, name(i+r), at(sec)))
				if i%3 == 0 {
					fail("remove from group", s.RemoveGroupDevice(ctx, g.ID, name(i+r+1)))
				}
			}
		})
		wg.Go(func() {
			p, err := s.PendingFaults(ctx, 4*devices)
			fail("pending faults", err)
			var rs []lodestone.Symbolication
			for _, f := range p {
				rs = append(rs, lodestone.Symbolication{FaultID: f.ID, ELFID: 7, Symbol: str("store_word"),
					Signature: fmt.Sprintf("sig-%d", f.Registers.PC%3), Title: str("contention")})
			}
			_, err = s.SaveSymbolications(ctx, rs)
			fail("save symbolications", err)
		})
		if r%3 == 2 {
			wg.Go(func() { fail("delete device", s.DeleteDevice(ctx, name(r))) })
		}
		wg.Wait()
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// testOTAContention runs a campaign's waves, device reports, hand-set targets, DDI polls, the writer and device
// deletes at once. As in testDeviceContention, each may find its device or campaign row changed or gone, but
// none may fail.
func testOTAContention(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	const devices = 16
	name := func(i int) string { return fmt.Sprintf("o%02d", i%devices) }
	var all []string
	for i := range devices {
		write(t, s, &lodestone.DeviceBatch{DeviceID: name(i), ReceivedAt: at(0), Info: info("1.0", 10)})
		all = append(all, name(i))
	}
	fw := firmware(t, s, "contention.bin", "2.0", 20)
	c := newCampaign(t, s, fw, all...)
	if _, err := s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "",
		at(1)); err != nil {
		t.Fatal(err)
	}
	ddi := ddiStore(t, s)
	var mu sync.Mutex
	var failures []string
	fail := func(what string, err error) {
		if c := lodestone.ErrorCode(err); err != nil && c != lodestone.ENOTFOUND && c != lodestone.ECONFLICT &&
			c != lodestone.EINVALID {
			mu.Lock()
			failures = append(failures, fmt.Sprintf("%s: %v", what, err))
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for r := range 3 {
		sec := 10 * (r + 1)
		wg.Go(func() {
			_, err := s.OfferWave(ctx, c.ID, r, devices, at(sec))
			fail("offer wave", err)
		})
		wg.Go(func() {
			for i := range devices {
				status := []string{lodestone.OTADownloading, lodestone.OTAInstalled, lodestone.OTAFailed}[(i+r)%3]
				_, err := s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: name(devices - 1 - i), Status: status,
					Version: "2.0", BuildID: 20}, at(sec+1))
				fail("report OTA", err)
			}
		})
		wg.Go(func() {
			for i := range devices {
				if i%4 == r {
					fail("set target", s.SetTarget(ctx, &lodestone.OTATarget{DeviceID: name(i),
						TargetVersion: "3.0", CreatedAt: at(sec)}))
				} else if i%4 == r+1 {
					fail("delete target", s.DeleteTarget(ctx, name(i)))
				}
			}
		})
		wg.Go(func() {
			for i := range devices {
				_, _, err := ddi.SyncDDIAction(ctx, name(i+r), at(sec+2))
				fail("sync DDI action", err)
			}
		})
		wg.Go(func() {
			var bs []*lodestone.DeviceBatch
			for i := range devices {
				bs = append(bs, &lodestone.DeviceBatch{DeviceID: name(i), ReceivedAt: at(sec + 3),
					Info: info("2.0", 20), OtaRequests: []lodestone.OtaRequest{{BuildID: 10}}})
			}
			fail("write telemetry", s.WriteTelemetry(ctx, bs))
		})
		wg.Go(func() {
			_, err := s.ExpireCampaignDevices(ctx, c.ID, at(sec), at(sec), at(sec+4))
			fail("expire campaign devices", err)
		})
		wg.Go(func() { fail("delete device", s.DeleteDevice(ctx, name(5*r+1))) })
		wg.Wait()
	}
	_, err := s.EndCampaign(ctx, c.ID, []string{lodestone.CampaignActive}, lodestone.CampaignAborted, true, at(100))
	fail("end campaign", err)
	for _, f := range failures {
		t.Error(f)
	}
}
