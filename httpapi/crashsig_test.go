package httpapi_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/crash/crashtest"
)

// Issue 13 item 7: the same fault site and caller from two devices, one whose stack snapshot lets CFI find a
// third frame and one whose snapshot does not, is one crash issue; its occurrences keep their own backtraces.
// The same fault site under another caller is another issue.
func TestCrashIssueStableUnderPartialUnwinding(t *testing.T) {
	bothStores(t, func(t *testing.T, e *crashEnv) {
		uploadELF(t, e, elfO2, "1.4.2")
		fw := crashtest.Open(t, elfO2)
		for dev, f := range map[string]func() []byte{
			"dev-deep":    func() []byte { return session(t, "dev-deep", "1.4.2", 0, fw.DeepBusFault()) },
			"dev-shallow": func() []byte { return session(t, "dev-shallow", "1.4.2", 0, fw.ShallowBusFault()) },
			"dev-pair":    func() []byte { return session(t, "dev-pair", "1.4.2", 0, fw.AreaFault(true)) },
			"dev-tail":    func() []byte { return session(t, "dev-tail", "1.4.2", 0, fw.AreaFault(false)) },
		} {
			if s, _, raw := e.post(nil, f()); s != 200 {
				t.Fatalf("ingest %s: %d %s", dev, s, raw)
			}
		}
		e.waitFaults(func(r faultsResp) bool {
			done := 0
			for _, f := range r.Faults {
				if f.SymbolState == "done" {
					done++
				}
			}
			return done == 4
		})
		var list struct {
			Groups []struct {
				ID          int64   `json:"id"`
				Occurrences int64   `json:"occurrence_count"`
				Devices     int64   `json:"affected_device_count"`
				Title       *string `json:"title"`
			} `json:"crash_groups"`
			Total int `json:"total"`
		}
		if s := e.do("GET", "/crashes", nil, &list); s != 200 || list.Total != 3 || len(list.Groups) != 3 {
			t.Fatalf("crash issues: %d %+v", s, list)
		}
		top := list.Groups[0]
		if top.Occurrences != 2 || top.Devices != 2 || top.Title == nil ||
			*top.Title != "BusFault in store_word < write_register" {
			t.Fatalf("the bus fault's issue: %+v", top)
		}
		var one struct {
			Occurrences []struct {
				DeviceID  string `json:"device_id"`
				Backtrace []struct {
					Method string `json:"method"`
				} `json:"backtrace"`
			} `json:"occurrences"`
		}
		if s := e.do("GET", "/crashes/"+jsonID(top.ID), nil, &one); s != 200 || len(one.Occurrences) != 2 {
			t.Fatalf("GET /crashes/%d: %d %+v", top.ID, s, one)
		}
		got := map[string]int{}
		for _, o := range one.Occurrences {
			n := 0
			for n < len(o.Backtrace) && o.Backtrace[n].Method != "scan" {
				n++
			}
			got[o.DeviceID] = n
		}
		if got["dev-deep"] != 5 || got["dev-shallow"] != 2 {
			t.Fatalf("occurrences and their certain frames: %v", got)
		}
		if list.Groups[1].Occurrences != 1 || list.Groups[2].Occurrences != 1 || list.Groups[1].Title == nil ||
			list.Groups[2].Title == nil || *list.Groups[1].Title != *list.Groups[2].Title {
			t.Fatalf("one fault site, two callers: %+v", list.Groups[1:])
		}
	})
}
