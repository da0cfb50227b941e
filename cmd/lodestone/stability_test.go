package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// TestReportStability is the "done when": for a simulated fleet where version B crashes three times as
// often as A, `lodestone report stability` (local and --server) shows the figures that say so.
func TestReportStability(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "lodestone.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 20 devices on each version, a contact every 15 minutes for 8 hours ending two hours ago; an A device
	// faults twice, a B device six times, in different hours (never its first). B devices first report A.
	start := time.Now().UTC().Truncate(time.Hour).Add(-10 * time.Hour)
	for step := range 32 {
		var batches []*lodestone.DeviceBatch
		for i := range 40 {
			id, v, faultHours := fmt.Sprintf("a%02d", i), "A", []int{2, 5}
			if i >= 20 {
				id, v, faultHours = fmt.Sprintf("b%02d", i), "B", []int{1, 2, 3, 4, 5, 6}
				if step == 0 {
					v = "A" // B devices updated from A after their first contact
				}
			}
			b := &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: start.Add(time.Duration(step) * 15 * time.Minute),
				Info: &lodestone.DeviceInfo{FirmwareVersion: v}}
			if step%4 == 1 && slices.Contains(faultHours, step/4) {
				b.Faults = []lodestone.Fault{{}}
			}
			batches = append(batches, b)
		}
		if err := db.WriteTelemetry(ctx, batches); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	url, _ := serveInProcess(t, dir)
	var answers []string
	for _, mode := range [][]string{{"--data-dir", dir}, {"--server", url}} {
		out, _ := runCLI(t, append([]string{"report", "stability", "--from", "1d", "--json"}, mode...)...)
		answers = append(answers, out)
		var rep struct {
			Versions []struct {
				Version           string  `json:"version"`
				Devices           int     `json:"devices"`
				DeviceHours       float64 `json:"device_hours"`
				Faults            int     `json:"faults"`
				FaultsPer1000h    float64 `json:"faults_per_1000h"`
				CrashFreeHoursPct float64 `json:"crash_free_hours_pct"`
			} `json:"versions"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Versions) != 2 {
			t.Fatalf("%v: %v\n%s", mode, err, out)
		}
		by := map[string]int{}
		for i, v := range rep.Versions {
			by[v.Version] = i
		}
		a, b := rep.Versions[by["A"]], rep.Versions[by["B"]]
		// By hand: 31 contacts × 15 minutes observed per device; A 2 faults per device, B 6.
		hours := 20 * 31 * 0.25
		if a.Devices != 20 || b.Devices != 20 || a.DeviceHours != hours || b.DeviceHours != hours ||
			a.Faults != 40 || b.Faults != 120 || math.Abs(b.FaultsPer1000h/a.FaultsPer1000h-3) > 1e-9 ||
			math.Abs(a.FaultsPer1000h-40*1000/hours) > 1e-9 {
			t.Fatalf("%v: A %+v, B %+v", mode, a, b)
		}
		// Each fault's hour is observed in full (four 15-minute contacts).
		if math.Abs(a.CrashFreeHoursPct-100*(hours-40)/hours) > 1e-9 || math.Abs(b.CrashFreeHoursPct-100*(hours-120)/hours) > 1e-9 {
			t.Fatalf("%v: crash-free A %.3f B %.3f", mode, a.CrashFreeHoursPct, b.CrashFreeHoursPct)
		}
	}
	if answers[0] != answers[1] {
		t.Fatalf("local and remote differ:\n%s\n%s", answers[0], answers[1])
	}
	text, _ := runCLI(t, "report", "stability", "--data-dir", dir, "--from", "1d")
	t.Logf("lodestone report stability:\n%s", text)
	for _, s := range []string{"Stability of the fleet", "Version", "Crash-free hours", "Faults/1000h",
		fmt.Sprintf("%.2f", 120*1000/(20*31*0.25)), fmt.Sprintf("%.2f", 40*1000/(20*31*0.25)), "\nB ",
		"A: faults ×3.00"} {
		if !strings.Contains(text, s) {
			t.Errorf("table lacks %q:\n%s", s, text)
		}
	}
	// Bad flags are usage errors (exit 2).
	for _, args := range [][]string{{"--from", "yesterday"}, {"--group", "g", "--tag", "t"}, {"--from", "1h", "--to", "2h"}} {
		var out, errb strings.Builder
		if code := run(ctx, append([]string{"report", "stability", "--data-dir", dir}, args...), &out, &errb, cliEnv); code != 2 {
			t.Errorf("%v: exit %d\n%s", args, code, errb.String())
		}
	}
}
