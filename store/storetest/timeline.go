package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func testDeviceTimeline(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fw := firmware(t, s, "t.bin", "2.0", 0)
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t1", ReceivedAt: at(0), Info: info("1.0", 1)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "other", ReceivedAt: at(0), Info: info("1.0", 1),
		Faults: []lodestone.Fault{{}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t1", ReceivedAt: at(60), Reboots: []lodestone.Reboot{{Reason: 3}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t1", ReceivedAt: at(120), Faults: []lodestone.Fault{crashFault(0x0800_0200)}})
	var logs []*lodestone.LogRecord
	for _, sec := range []int{100, 110, 125, 1000} {
		logs = append(logs, logRec("p", "t1", sec, 17, fmt.Sprintf(`"line %d"`, sec)))
	}
	logs = append(logs, logRec("p", "other", 115, 17, `"not t1"`))
	if err := logStore(t, s).WriteLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	c := newCampaign(t, s, fw, "t1")
	s.SetCampaignStatus(ctx, c.ID, []string{lodestone.CampaignCreated}, lodestone.CampaignActive, "", at(200))
	if _, err := s.OfferWave(ctx, c.ID, 0, 1, at(200)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReportOTA(ctx, lodestone.OTAReport{DeviceID: "t1", Status: lodestone.OTAInstalled}, at(300)); err != nil {
		t.Fatal(err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t1", ReceivedAt: at(300), Info: info("2.0", 2)})
	if _, err := s.MarkOffline(ctx, at(1000)); err != nil {
		t.Fatal(err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t1", ReceivedAt: at(4000)})

	full, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "t1", LogWindow: 12 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range full.Entries {
		got = append(got, fmt.Sprintf("%d %s %s", e.At.Sub(base)/time.Second, e.Kind, e.Summary))
	}
	want := []string{
		"4000 online online",
		"300 offline offline (last contact)",
		"300 firmware firmware 1.0 → 2.0",
		"300 ota campaign " + fmt.Sprint(c.ID) + ": installed",
		"200 ota campaign " + fmt.Sprint(c.ID) + ": offered",
		"120 fault fault on 1.0 in ",
		"60 reboot reboot: WatchdogTimeout (unexpected)",
		"0 online online",
		"0 firmware first reported firmware 1.0",
	}
	// Events of one millisecond sort by the order they were recorded (newest first); the fault's summary names its
	// function once it is symbolicated, so only its start is compared.
	if len(got) != len(want) {
		t.Fatalf("timeline:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], strings.TrimSuffix(want[i], " in ")) {
			t.Fatalf("entry %d: %q, want %q\nall:\n%s", i, got[i], want[i], strings.Join(got, "\n"))
		}
	}
	fault := full.Entries[5]
	if fault.Version != "1.0" || len(fault.Logs) != 2 || !strings.Contains(fault.Logs[0].Body, "line 110") ||
		!strings.Contains(fault.Logs[1].Body, "line 125") {
		t.Fatalf("fault entry %+v", fault)
	}
	if r := full.Entries[6]; r.ReasonCode != 3 || !r.Unexpected || r.Reason != "WatchdogTimeout" {
		t.Fatalf("reboot entry %+v", r)
	}
	if full.Next != "" {
		t.Fatalf("one page holds it all, yet Next = %q", full.Next)
	}
	// Pages of two walk the same entries in the same order.
	var paged []lodestone.TimelineEntry
	cursor := ""
	for range 10 {
		p, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "t1", Limit: 2, Cursor: cursor, LogWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, p.Entries...)
		if p.Next == "" {
			break
		}
		if len(p.Entries) != 2 {
			t.Fatalf("short page before the end: %+v", p)
		}
		cursor = p.Next
	}
	if len(paged) != len(full.Entries) {
		t.Fatalf("paged %d entries, want %d", len(paged), len(full.Entries))
	}
	for i := range paged {
		if paged[i].Kind != full.Entries[i].Kind || paged[i].ID != full.Entries[i].ID || paged[i].Logs != nil {
			t.Fatalf("page entry %d: %+v, want %+v", i, paged[i], full.Entries[i])
		}
	}
	// A time range.
	p, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "t1", From: at(60), To: at(300)})
	if err != nil || len(p.Entries) != 3 || p.Entries[0].Kind != lodestone.TimelineOTA ||
		p.Entries[2].Kind != lodestone.TimelineReboot {
		t.Fatalf("range: %+v %v", p.Entries, err)
	}
	if _, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "nope"}); code(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown device: %v", err)
	}
	for _, bad := range []string{"x", "1_2", "1_9_3", "a_1_1"} {
		if _, err := s.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "t1", Cursor: bad}); code(err) != lodestone.EINVALID {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}
}
