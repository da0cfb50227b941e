package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func crashFault(pc uint32) lodestone.Fault {
	return lodestone.Fault{FaultType: 2, CFSR: 0x8200, BFAR: 0x40100000,
		Registers: lodestone.Registers{PC: pc, LR: 0x08000101, SP: 0x20001f00}}
}

func pending(tb testing.TB, s lodestone.Store) []*lodestone.Fault {
	tb.Helper()
	got, err := s.PendingFaults(context.Background(), 100)
	if err != nil {
		tb.Fatalf("PendingFaults: %v", err)
	}
	return got
}

func save(tb testing.TB, s lodestone.Store, rs ...lodestone.Symbolication) []lodestone.CrashRegression {
	tb.Helper()
	regs, err := s.SaveSymbolications(context.Background(), rs)
	if err != nil {
		tb.Fatalf("SaveSymbolications: %v", err)
	}
	return regs
}

func str(s string) *string { return &s }

// testFaultFirmwareRecorded: a fault keeps the firmware its device reported in the session it came in, even after
// the device moves on, and waits in the pending queue.
func testFaultFirmwareRecorded(t *testing.T, s lodestone.Store) {
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d1", ReceivedAt: at(1), Info: info("1.0.0", 0xAB),
		Faults: []lodestone.Fault{crashFault(0x08000200)}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d1", ReceivedAt: at(2), Info: info("1.1.0", 0xCD)})
	p := pending(t, s)
	if len(p) != 1 || p[0].FirmwareVersion != "1.0.0" || p[0].BuildID != 0xAB || p[0].DeviceID != "d1" ||
		p[0].SymbolState != lodestone.SymbolPending || p[0].Registers.PC != 0x08000200 {
		t.Fatalf("pending faults: %+v", p)
	}
}

func testELFIndexAndLateSymbols(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d1", ReceivedAt: at(1), Info: info("2.0.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000200)}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d2", ReceivedAt: at(2), Info: info("9.9.9", 0x1122334455667788),
		Faults: []lodestone.Fault{crashFault(0x08000300)}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d3", ReceivedAt: at(3), Info: info("3.0.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000400)}})
	p := pending(t, s)
	if len(p) != 3 {
		t.Fatalf("pending: %d", len(p))
	}
	// No ELF yet: every fault is filed by PC and waits.
	for _, f := range p {
		save(t, s, lodestone.Symbolication{FaultID: f.ID, Signature: "pc" + f.FirmwareVersion})
	}
	if p := pending(t, s); len(p) != 0 {
		t.Fatalf("still pending after saving: %d", len(p))
	}
	if _, err := s.MatchELF(ctx, "2.0.0", 0); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("match before upload: %v", err)
	}

	byVersion := &lodestone.ELF{Version: "2.0.0", BuildID: "aaaa", BuildID64: 0xAAAA000000000000,
		Blob: lodestone.BlobRef{SHA256: sha('a'), Size: 10}, Filename: "fw-2.elf"}
	if err := s.CreateELF(ctx, byVersion); err != nil || byVersion.ID == 0 || byVersion.CreatedAt.IsZero() {
		t.Fatalf("CreateELF: %v %+v", err, byVersion)
	}
	// Late symbols: exactly the fault of that version is queued again.
	if p := pending(t, s); len(p) != 1 || p[0].DeviceID != "d1" {
		t.Fatalf("after ELF 2.0.0: %+v", p)
	}
	byBuild := &lodestone.ELF{Version: "other-label", BuildID: "1122334455667788ff", BuildID64: 0x1122334455667788,
		Blob: lodestone.BlobRef{SHA256: sha('a'), Size: 10}, Filename: "fw.elf"}
	if err := s.CreateELF(ctx, byBuild); err != nil {
		t.Fatal(err)
	}
	if p := pending(t, s); len(p) != 2 || p[1].DeviceID != "d2" {
		t.Fatalf("after ELF by build id: %+v", p)
	}

	// Matching: build id first, then version; never some other ELF.
	for _, c := range []struct {
		version string
		build   uint64
		want    int64
	}{{"2.0.0", 0, byVersion.ID}, {"2.0.0", 0x1122334455667788, byBuild.ID}, {"x", 0x1122334455667788, byBuild.ID},
		{"2.0.0", 0x99, byVersion.ID}, {"3.0.0", 0, 0}, {"", 0, 0}} {
		e, err := s.MatchELF(ctx, c.version, c.build)
		if c.want == 0 {
			if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
				t.Fatalf("match %q %x: %v %+v", c.version, c.build, err, e)
			}
			continue
		}
		if err != nil || e.ID != c.want {
			t.Fatalf("match %q %x: %v %+v, want id %d", c.version, c.build, err, e, c.want)
		}
	}
	list, err := s.FindELFs(ctx, 0, 0)
	if err != nil || len(list) != 2 || list[0].ID != byBuild.ID || list[1].BuildID64 != 0xAAAA000000000000 ||
		list[1].Blob != byVersion.Blob || list[1].Filename != "fw-2.elf" {
		t.Fatalf("FindELFs: %v %+v", err, list)
	}
	got, err := s.FindELFByID(ctx, byVersion.ID)
	if err != nil || got.Version != "2.0.0" || got.BuildID != "aaaa" || !got.CreatedAt.Equal(byVersion.CreatedAt) {
		t.Fatalf("FindELFByID: %v %+v", err, got)
	}
	// Deleting one of two ELFs sharing a blob reports it still shared; the last one reports it free.
	if _, shared, err := s.DeleteELF(ctx, byVersion.ID); err != nil || !shared {
		t.Fatalf("delete first: %v shared=%v", err, shared)
	}
	if _, shared, err := s.DeleteELF(ctx, byBuild.ID); err != nil || shared {
		t.Fatalf("delete last: %v shared=%v", err, shared)
	}
	if _, _, err := s.DeleteELF(ctx, byBuild.ID); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete again: %v", err)
	}
	if _, err := s.FindELFByID(ctx, byBuild.ID); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("find deleted: %v", err)
	}
}

func sha(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func testCrashGroups(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// Three faults of one crash from two devices on two firmware versions, one of another crash.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(10), Info: info("1.2.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000200), crashFault(0x08000200)}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "b", ReceivedAt: at(20), Info: info("1.10.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000210), crashFault(0x08000900)}})
	p := pending(t, s)
	bt := []lodestone.BacktraceFrame{{Address: 0x08000200, Method: "pc", Frames: []lodestone.SourceFrame{
		{Function: "store_word", File: "app.c", Line: 30, Inlined: true},
		{Function: "write_register", File: "app.c", Line: 41}}}}
	causes := []lodestone.FaultCause{{Name: "PRECISERR", Register: "BFSR", Text: "precise data bus error at 0x40100000",
		Address: 0x40100000, AddressValid: true}}
	var rs []lodestone.Symbolication
	for _, f := range p {
		sig := "sig-write"
		if f.Registers.PC == 0x08000900 {
			sig = "sig-other"
		}
		rs = append(rs, lodestone.Symbolication{FaultID: f.ID, ELFID: 7, Symbol: str("store_word at app.c:30"),
			Backtrace: bt, Causes: causes, Signature: sig, Title: str("title " + sig)})
	}
	if regs := save(t, s, rs...); len(regs) != 0 {
		t.Fatalf("regressions on first save: %+v", regs)
	}
	// Saving the same results again (a second worker, a replica) counts nothing twice.
	save(t, s, rs...)

	groups, total, err := s.FindCrashGroups(ctx, lodestone.CrashFilter{})
	if err != nil || total != 2 || len(groups) != 2 {
		t.Fatalf("FindCrashGroups: %v total %d %+v", err, total, groups)
	}
	g := groups[0]
	slices.Sort(g.FirmwareVersions)
	if g.Signature != "sig-write" || g.Occurrences != 3 || g.AffectedDevices != 2 || g.State != lodestone.CrashOpen ||
		!g.FirstSeen.Equal(at(10)) || !g.LastSeen.Equal(at(20)) || g.Title == nil || *g.Title != "title sig-write" ||
		g.PC != 0x08000200 || g.FaultType != 2 || !slices.Equal(g.FirmwareVersions, []string{"1.10.0", "1.2.0"}) {
		t.Fatalf("group: %+v", g)
	}
	occ, err := s.FindCrashOccurrences(ctx, g.ID, lodestone.TelemetryFilter{})
	if err != nil || len(occ) != 3 || occ[0].DeviceID != "b" || occ[0].CrashGroupID == nil || *occ[0].CrashGroupID != g.ID {
		t.Fatalf("occurrences: %v %+v", err, occ)
	}
	f := occ[0]
	if f.SymbolState != lodestone.SymbolDone || f.ELFID == nil || *f.ELFID != 7 || f.Symbol == nil ||
		!slices.EqualFunc(f.Backtrace, bt, func(a, b lodestone.BacktraceFrame) bool {
			return a.Address == b.Address && a.Method == b.Method && slices.Equal(a.Frames, b.Frames)
		}) || !slices.Equal(f.Causes, causes) {
		t.Fatalf("symbolicated fault: %+v", f)
	}
	all, _ := s.FindFaults(ctx, lodestone.TelemetryFilter{DeviceID: "a"})
	if len(all) != 2 || len(all[0].Backtrace) != 1 || len(all[0].Causes) != 1 {
		t.Fatalf("FindFaults lacks symbolication: %+v", all)
	}

	// Resolve, then the crash happens on older firmware (no regression) and on newer firmware (regression).
	if _, err := s.SetCrashGroupState(ctx, g.ID, "bogus"); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("bad state: %v", err)
	}
	r, err := s.SetCrashGroupState(ctx, g.ID, lodestone.CrashResolved)
	if err != nil || r.State != lodestone.CrashResolved || r.ResolvedVersion != "1.10.0" {
		t.Fatalf("resolve: %v %+v", err, r)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "a", ReceivedAt: at(30), Info: info("1.9.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000200)}})
	p = pending(t, s)
	if regs := save(t, s, lodestone.Symbolication{FaultID: p[0].ID, Signature: "sig-write"}); len(regs) != 0 {
		t.Fatalf("old firmware raised a regression: %+v", regs)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "c", ReceivedAt: at(40), Info: info("1.11.0", 0),
		Faults: []lodestone.Fault{crashFault(0x08000200)}})
	p = pending(t, s)
	regs := save(t, s, lodestone.Symbolication{FaultID: p[0].ID, Signature: "sig-write"})
	if len(regs) != 1 || regs[0].DeviceID != "c" || regs[0].FirmwareVersion != "1.11.0" || regs[0].Group == nil ||
		regs[0].Group.State != lodestone.CrashOpen || !regs[0].Group.Regression || regs[0].Group.Occurrences != 5 ||
		regs[0].Group.AffectedDevices != 3 {
		t.Fatalf("regression: %+v", regs)
	}

	// Muted groups stay muted whatever firmware.
	other := groups[1]
	if m, err := s.SetCrashGroupState(ctx, other.ID, lodestone.CrashMuted); err != nil || m.State != lodestone.CrashMuted {
		t.Fatalf("mute: %v", err)
	}
	if l, n, err := s.FindCrashGroups(ctx, lodestone.CrashFilter{State: lodestone.CrashMuted}); err != nil || n != 1 ||
		l[0].ID != other.ID {
		t.Fatalf("muted filter: %v %d", err, n)
	}

	// Merge: the faults move, counts follow, and the merged signature leads to the target from now on.
	if _, err := s.MergeCrashGroups(ctx, other.ID, other.ID); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("self merge: %v", err)
	}
	if _, err := s.MergeCrashGroups(ctx, other.ID, 999999); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("merge into missing: %v", err)
	}
	into, err := s.MergeCrashGroups(ctx, other.ID, g.ID)
	if err != nil || into.Occurrences != 6 || into.AffectedDevices != 3 {
		t.Fatalf("merge: %v %+v", err, into)
	}
	from, err := s.FindCrashGroupByID(ctx, other.ID)
	if err != nil || from.State != lodestone.CrashMerged || from.MergedInto == nil || *from.MergedInto != g.ID {
		t.Fatalf("merged group: %v %+v", err, from)
	}
	if _, err := s.SetCrashGroupState(ctx, other.ID, lodestone.CrashOpen); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("state change of merged group: %v", err)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(50), Faults: []lodestone.Fault{crashFault(0x08000900)}})
	p = pending(t, s)
	save(t, s, lodestone.Symbolication{FaultID: p[0].ID, Signature: "sig-other"})
	if g2, _ := s.FindCrashGroupByID(ctx, g.ID); g2.Occurrences != 7 || g2.AffectedDevices != 4 {
		t.Fatalf("fault of merged signature: %+v", g2)
	}
	if _, n, _ := s.FindCrashGroups(ctx, lodestone.CrashFilter{}); n != 1 {
		t.Fatalf("listed groups after merge: %d", n)
	}

	// A fault that moves to a better signature (late symbols) leaves its old group.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "e", ReceivedAt: at(60), Faults: []lodestone.Fault{crashFault(0x08000500)}})
	p = pending(t, s)
	save(t, s, lodestone.Symbolication{FaultID: p[0].ID, Signature: "0208000500"})
	save(t, s, lodestone.Symbolication{FaultID: p[0].ID, ELFID: 9, Signature: "sig-write"})
	if g2, _ := s.FindCrashGroupByID(ctx, g.ID); g2.Occurrences != 8 || g2.AffectedDevices != 5 {
		t.Fatalf("moved fault not counted: %+v", g2)
	}
	if _, err := s.FindCrashGroupByID(ctx, 999999); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("missing group: %v", err)
	}
}

// testCrashLegacySignature: signatures stopped covering a third frame. A crash whose issue was filed under its
// old key keeps that issue: the first fault that carries both keys makes the new key lead there (hidden, as a
// merged group), so later faults with only the new key, from shallower snapshots, land there too. When the new
// key already has an issue, it wins; a legacy key without an issue creates nothing.
func testCrashLegacySignature(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	fault := func(device string, sec int, r lodestone.Symbolication) *lodestone.CrashGroup {
		t.Helper()
		write(t, s, &lodestone.DeviceBatch{DeviceID: device, ReceivedAt: at(sec), Info: info("1.0.0", 0),
			Faults: []lodestone.Fault{crashFault(0x08000200)}})
		p := pending(t, s)
		if len(p) != 1 {
			t.Fatalf("pending: %d", len(p))
		}
		r.FaultID, r.ELFID, r.Title = p[0].ID, 1, str("title "+r.Signature)
		save(t, s, r)
		f, err := s.FindFaults(ctx, lodestone.TelemetryFilter{DeviceID: device})
		if err != nil || len(f) != 1 || f[0].CrashGroupID == nil {
			t.Fatalf("fault of %s: %v %+v", device, err, f)
		}
		g, err := s.FindCrashGroupByID(ctx, *f[0].CrashGroupID)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// Before: one issue under the old three-frame key, muted by an operator.
	old := fault("a", 10, lodestone.Symbolication{Signature: "sig-3"})
	if _, err := s.SetCrashGroupState(ctx, old.ID, lodestone.CrashMuted); err != nil {
		t.Fatal(err)
	}
	// After: a deep snapshot (both keys), then a shallow one (the new key only): both join the old issue.
	if g := fault("b", 20, lodestone.Symbolication{Signature: "sig-2", LegacySignature: "sig-3"}); g.ID != old.ID ||
		g.Occurrences != 2 || g.State != lodestone.CrashMuted || g.Signature != "sig-3" {
		t.Fatalf("deep fault after the change: %+v, want issue %d", g, old.ID)
	}
	if g := fault("c", 30, lodestone.Symbolication{Signature: "sig-2"}); g.ID != old.ID || g.Occurrences != 3 ||
		g.AffectedDevices != 3 {
		t.Fatalf("shallow fault after the change: %+v, want issue %d", g, old.ID)
	}
	if l, n, err := s.FindCrashGroups(ctx, lodestone.CrashFilter{State: lodestone.CrashMuted}); err != nil ||
		n != 1 || l[0].ID != old.ID {
		t.Fatalf("muted issues: %v %d %+v", err, n, l)
	}
	if l, n, _ := s.FindCrashGroups(ctx, lodestone.CrashFilter{}); n != 1 || l[0].ID != old.ID {
		t.Fatalf("the new key shows up as an issue of its own: %+v", l)
	}

	// The new key already has an issue (a shallow snapshot came first): it keeps its faults, the old one stays.
	shallow := fault("d", 40, lodestone.Symbolication{Signature: "sig-2b"})
	fault("e", 41, lodestone.Symbolication{Signature: "sig-3b"})
	if g := fault("f", 50, lodestone.Symbolication{Signature: "sig-2b", LegacySignature: "sig-3b"}); g.ID != shallow.ID ||
		g.Occurrences != 2 {
		t.Fatalf("new key with an issue: %+v, want issue %d", g, shallow.ID)
	}
	// A legacy key without an issue: the new key gets an issue of its own.
	g := fault("g", 60, lodestone.Symbolication{Signature: "sig-2c", LegacySignature: "sig-3c"})
	if g.Signature != "sig-2c" || g.State != lodestone.CrashOpen || g.Occurrences != 1 {
		t.Fatalf("legacy key without an issue: %+v", g)
	}

	// Merging the old issue away takes the new key along.
	into := fault("h", 70, lodestone.Symbolication{Signature: "sig-x"})
	if _, err := s.MergeCrashGroups(ctx, old.ID, into.ID); err != nil {
		t.Fatal(err)
	}
	if g := fault("i", 80, lodestone.Symbolication{Signature: "sig-2"}); g.ID != into.ID || g.Occurrences != 5 {
		t.Fatalf("after merging the old issue: %+v, want issue %d", g, into.ID)
	}
}

// testClaimFaults: workers split pending faults. A claimed fault is skipped by other claimers until its lease
// runs out or its result is saved; PendingFaults still lists it.
func testClaimFaults(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	for i := range 5 {
		write(t, s, &lodestone.DeviceBatch{DeviceID: "d1", ReceivedAt: at(i + 1), Info: info("1.0.0", 0),
			Faults: []lodestone.Fault{crashFault(0x08000200 + uint32(i)*2)}})
	}
	claim := func(limit int, lease time.Duration) []*lodestone.Fault {
		t.Helper()
		got, err := s.ClaimFaults(ctx, limit, lease)
		if err != nil {
			t.Fatalf("ClaimFaults: %v", err)
		}
		return got
	}
	// The short lease must outlast the claims and reads below on a loaded machine (300 ms did not, once, under a
	// CI run's fuzzing), and it is waited out once.
	const short = 2 * time.Second
	first := claim(3, short)
	claimed := time.Now() // the lease started before this
	if len(first) != 3 || first[0].Registers.PC != 0x08000200 || first[2].Registers.PC != 0x08000204 ||
		first[0].DeviceID != "d1" || first[0].FirmwareVersion != "1.0.0" {
		t.Fatalf("first claim: %+v", first)
	}
	second := claim(10, time.Minute)
	if len(second) != 2 || second[0].Registers.PC != 0x08000206 || second[1].Registers.PC != 0x08000208 {
		t.Fatalf("second claim took %d faults, want the 2 unclaimed ones", len(second))
	}
	if got := claim(10, time.Minute); len(got) != 0 {
		t.Fatalf("a third claim got %d faults, want none", len(got))
	}
	if p := pending(t, s); len(p) != 5 {
		t.Fatalf("PendingFaults lists %d, want all 5", len(p))
	}
	// Saving ends a claim for good; a lease that runs out frees the rest of its claim, not others' claims.
	save(t, s, lodestone.Symbolication{FaultID: first[0].ID, Signature: "claimed"})
	time.Sleep(time.Until(claimed.Add(short + 100*time.Millisecond)))
	again := claim(10, time.Minute)
	if len(again) != 2 || again[0].ID != first[1].ID || again[1].ID != first[2].ID {
		t.Fatalf("after the lease ran out, claimed %d faults, want the 2 unsaved ones of the first claim", len(again))
	}
	if p := pending(t, s); len(p) != 4 {
		t.Fatalf("pending after a save: %d, want 4", len(p))
	}
}

// testDeleteDeviceWhileSymbolicating deletes devices while their faults are being filed into crash groups, the
// way an operator's delete meets the symbolication worker. Both must succeed: a store that takes the fault and
// the device in opposite orders deadlocks, and one of the two fails.
func testDeleteDeviceWhileSymbolicating(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	const n = 24
	for i := range n {
		write(t, s, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("d%02d", i), ReceivedAt: at(i),
			Info: info("1.0.0", 0), Faults: []lodestone.Fault{crashFault(0x08000200)}})
	}
	p, err := s.PendingFaults(ctx, 2*n)
	if err != nil || len(p) != n {
		t.Fatalf("PendingFaults: %v, %d faults", err, len(p))
	}
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for _, f := range p {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.SaveSymbolications(ctx, []lodestone.Symbolication{{FaultID: f.ID, ELFID: 7,
				Symbol: str("store_word"), Signature: "sig-delete", Title: str("delete race")}})
			if err != nil {
				err = fmt.Errorf("symbolicate fault %d: %w", f.ID, err)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			err := s.DeleteDevice(ctx, f.DeviceID)
			if err != nil {
				err = fmt.Errorf("delete %s: %w", f.DeviceID, err)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if left, err := s.FindFaults(ctx, lodestone.TelemetryFilter{}); err != nil || len(left) != 0 {
		t.Fatalf("faults after every device was deleted: %v %+v", err, left)
	}
}
