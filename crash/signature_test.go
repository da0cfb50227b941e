package crash_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/crash/crashtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/symbol"
)

// certain counts the leading frames found by pc, lr or cfi.
func certain(bt []lodestone.BacktraceFrame) int {
	n := 0
	for n < len(bt) && bt[n].Method != string(symbol.MethodScan) {
		n++
	}
	return n
}

func outer(f lodestone.BacktraceFrame) string { return f.Frames[len(f.Frames)-1].Function }

// The same fault site and caller, from a snapshot that lets CFI reach three more frames and from one that ends at
// the caller, is one signature; the deeper frames stay on the backtrace. The same site under another caller is
// another signature.
func TestSignatureStableUnderPartialUnwinding(t *testing.T) {
	ix, err := symbol.Open(elfO2)
	if err != nil {
		t.Fatal(err)
	}
	fw := crashtest.Open(t, elfO2)
	deep := crash.Symbolicate(crashtest.Fault(fw.DeepBusFault()), ix, 1)
	shallow := crash.Symbolicate(crashtest.Fault(fw.ShallowBusFault()), ix, 1)
	if certain(deep.Backtrace) != 5 || outer(deep.Backtrace[2]) != "run_cycle" || deep.Backtrace[2].Method != "cfi" ||
		outer(deep.Backtrace[4]) != "Reset_Handler" {
		t.Fatalf("deep snapshot: %+v", deep.Backtrace)
	}
	if len(shallow.Backtrace) != 2 || outer(shallow.Backtrace[0]) != "write_register" ||
		outer(shallow.Backtrace[1]) != "process_batch" || shallow.Backtrace[1].Method != "lr" {
		t.Fatalf("shallow snapshot: %+v", shallow.Backtrace)
	}
	if deep.Signature != shallow.Signature || deep.Title == nil || shallow.Title == nil || *deep.Title != *shallow.Title ||
		*deep.Title != "BusFault in store_word < write_register" {
		t.Fatalf("one crash, two depths: %q %v vs %q %v", deep.Signature, deep.Title, shallow.Signature, shallow.Title)
	}

	// Keys over two frames or fewer are the keys lodestone always gave; a deeper crash carries its old
	// three-frame key so that its existing issue keeps it.
	v1 := func(names ...string) string {
		s := fmt.Sprintf("v1|%d", 2)
		for _, n := range names {
			s += "|" + n
		}
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:10])
	}
	if deep.Signature != v1("store_word<write_register", "process_batch") || shallow.LegacySignature != "" ||
		deep.LegacySignature != v1("store_word<write_register", "process_batch", "run_cycle") {
		t.Fatalf("keys: %q legacy %q, shallow legacy %q", deep.Signature, deep.LegacySignature, shallow.LegacySignature)
	}

	pair := crash.Symbolicate(crashtest.Fault(fw.AreaFault(true)), ix, 1)
	tail := crash.Symbolicate(crashtest.Fault(fw.AreaFault(false)), ix, 1)
	if certain(pair.Backtrace) < 3 || outer(pair.Backtrace[1]) != "geo::measure(geo::Shape const&, geo::Shape const&)" ||
		outer(tail.Backtrace[1]) != "shape_total" || outer(pair.Backtrace[0]) != outer(tail.Backtrace[0]) {
		t.Fatalf("area faults: %+v / %+v", pair.Backtrace, tail.Backtrace)
	}
	if pair.Signature == tail.Signature || *pair.Title != *tail.Title {
		t.Fatalf("another caller: %q %v vs %q %v", pair.Signature, *pair.Title, tail.Signature, *tail.Title)
	}
}

// Through the workers and a real store: the deep and the shallow snapshot from two devices are one crash issue
// whose occurrences keep their own backtraces; another caller is a second issue.
func TestPartialUnwindingOneIssue(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(elfO2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := blobs.Put(ctx, f, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateELF(ctx, &lodestone.ELF{Version: "1.4.2", Blob: ref, Filename: "fw.elf"}); err != nil {
		t.Fatal(err)
	}
	sym := crash.New(crash.Config{}, db, blobs, nil, slog.New(slog.DiscardHandler))
	fw := crashtest.Open(t, elfO2)
	for dev, cf := range map[string]*lodestone.Fault{"deep": crashtest.Fault(fw.DeepBusFault()),
		"shallow": crashtest.Fault(fw.ShallowBusFault()), "other-caller": crashtest.Fault(fw.AreaFault(false)),
		"pair-caller": crashtest.Fault(fw.AreaFault(true))} {
		if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: dev, ReceivedAt: time.Now(),
			Info: &lodestone.DeviceInfo{FirmwareVersion: "1.4.2"}, Faults: []lodestone.Fault{*cf}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := sym.RunOnce(ctx); err != nil || n != 4 {
		t.Fatalf("RunOnce: %d %v", n, err)
	}
	groups, total, err := db.FindCrashGroups(ctx, lodestone.CrashFilter{})
	if err != nil || total != 3 {
		t.Fatalf("groups: %v %d %+v", err, total, groups)
	}
	g := groups[0]
	if g.Occurrences != 2 || g.AffectedDevices != 2 || g.Title == nil || *g.Title != "BusFault in store_word < write_register" {
		t.Fatalf("issue: %+v", g)
	}
	occ, err := db.FindCrashOccurrences(ctx, g.ID, lodestone.TelemetryFilter{})
	if err != nil || len(occ) != 2 {
		t.Fatalf("occurrences: %v %d", err, len(occ))
	}
	depth := map[string]int{}
	for _, o := range occ {
		depth[o.DeviceID] = certain(o.Backtrace)
	}
	if depth["deep"] != 5 || depth["shallow"] != 2 {
		t.Fatalf("backtraces kept as context: %v", depth)
	}
}
