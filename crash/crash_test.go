package crash_test

import (
	"context"
	"debug/elf"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/crash"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/symbol"
)

const (
	elfO0 = "../symbol/testdata/firmware-O0.elf"
	elfO2 = "../symbol/testdata/firmware-O2.elf"
)

func symbols(tb testing.TB, path string) map[string]uint32 {
	tb.Helper()
	f, err := elf.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	out := map[string]uint32{}
	for _, s := range syms {
		out[s.Name] = uint32(s.Value &^ 1)
	}
	return out
}

func fault(addr map[string]uint32, fn string) *lodestone.Fault {
	return &lodestone.Fault{ID: 1, FaultType: 3, CFSR: 1 << 25,
		Registers: lodestone.Registers{PC: addr[fn] + 2, LR: (addr["main"] + 4) | 1, SP: 0x20001f00}}
}

// The same crash in two builds of one source (different addresses) is one signature; another function is
// another; without symbols the signature is ferrite's fault type and PC.
func TestSignatureOverFunctionNames(t *testing.T) {
	ix0, err := symbol.Open(elfO0)
	if err != nil {
		t.Fatal(err)
	}
	ix2, err := symbol.Open(elfO2)
	if err != nil {
		t.Fatal(err)
	}
	a0, a2 := symbols(t, elfO0), symbols(t, elfO2)
	if a0["main"] == a2["main"] && a0["run_cycle"] == a2["run_cycle"] {
		t.Fatal("test ELFs place functions alike; the test proves nothing")
	}
	s0 := crash.Symbolicate(fault(a0, "run_cycle"), ix0, 1)
	s2 := crash.Symbolicate(fault(a2, "run_cycle"), ix2, 2)
	if s0.Signature != s2.Signature || s0.Title == nil || *s0.Title != "UsageFault in run_cycle" {
		t.Fatalf("same crash, two builds: %q %v vs %q", s0.Signature, s0.Title, s2.Signature)
	}
	other := crash.Symbolicate(fault(a2, "process_batch"), ix2, 2)
	if other.Signature == s2.Signature {
		t.Fatal("different functions share a signature")
	}
	bare := crash.Symbolicate(fault(a2, "run_cycle"), nil, 0)
	if bare.Signature != "03"+hex8(a2["run_cycle"]+2) || bare.Title != nil || bare.Symbol != nil ||
		len(bare.Backtrace) != 0 || len(bare.Causes) != 1 || bare.Causes[0].Name != "DIVBYZERO" {
		t.Fatalf("without ELF: %+v", bare)
	}
	if s2.Symbol == nil || len(s2.Backtrace) == 0 || s2.Backtrace[0].Method != "pc" {
		t.Fatalf("symbolicated: %+v", s2)
	}
}

func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

// events collects published events; it stands where the event bus would.
type events struct {
	mu  sync.Mutex
	got []lodestone.Event
}

func (e *events) Publish(_ context.Context, ev lodestone.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
	return nil
}

// A regression raises a crash_regression event; a nil publisher is fine too.
func TestRegressionPublishesEvent(t *testing.T) {
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
	ev := &events{}
	sym := crash.New(crash.Config{}, db, blobs, ev, slog.New(slog.DiscardHandler))
	a := symbols(t, elfO2)
	f := fault(a, "run_cycle")
	write := func(version string) {
		t.Helper()
		if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "d", ReceivedAt: time.Now(),
			Info: &lodestone.DeviceInfo{FirmwareVersion: version}, Faults: []lodestone.Fault{*f}}}); err != nil {
			t.Fatal(err)
		}
		if n, err := sym.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("RunOnce: %d %v", n, err)
		}
	}
	write("1.0.0")
	groups, _, err := db.FindCrashGroups(ctx, lodestone.CrashFilter{})
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups: %v %d", err, len(groups))
	}
	if _, err := db.SetCrashGroupState(ctx, groups[0].ID, lodestone.CrashResolved); err != nil {
		t.Fatal(err)
	}
	write("1.0.0") // the old firmware still crashes: expected, no alert
	if len(ev.got) != 0 {
		t.Fatalf("alert for old firmware: %+v", ev.got)
	}
	write("1.1.0")
	if len(ev.got) != 1 || ev.got[0].Type != crash.EventCrashRegression || ev.got[0].DeviceID != "d" {
		t.Fatalf("events: %+v", ev.got)
	}
}

func BenchmarkSymbolicateFault(b *testing.B) {
	ix, err := symbol.Open(elfO2)
	if err != nil {
		b.Fatal(err)
	}
	a := symbols(b, elfO2)
	f := fault(a, "run_cycle")
	crash.Symbolicate(f, ix, 1) // warm the index's address cache, as a running server has it
	b.ReportAllocs()
	for b.Loop() {
		crash.Symbolicate(f, ix, 1)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "faults/s")
}

// BenchmarkSymbolicationRound measures the whole worker path: read pending faults from SQLite, match the ELF,
// resolve, save results and crash groups, in rounds of 100 faults.
func BenchmarkSymbolicationRound(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	blobs, err := disk.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	sym := crash.New(crash.Config{Batch: 100}, db, blobs, nil, slog.New(slog.DiscardHandler))
	f, err := os.Open(elfO2)
	if err != nil {
		b.Fatal(err)
	}
	ref, _, err := blobs.Put(ctx, f, 0)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := db.CreateELF(ctx, &lodestone.ELF{Version: "1.4.2", Blob: ref, Filename: "fw.elf"}); err != nil {
		b.Fatal(err)
	}
	a := symbols(b, elfO2)
	batch := &lodestone.DeviceBatch{DeviceID: "d", Info: &lodestone.DeviceInfo{FirmwareVersion: "1.4.2"}}
	for _, fn := range []string{"run_cycle", "process_batch", "write_register", "main"} {
		for range 25 {
			batch.Faults = append(batch.Faults, *fault(a, fn))
		}
	}
	faults := 0
	for b.Loop() {
		b.StopTimer()
		batch.ReceivedAt = time.Now()
		if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{batch}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := sym.RunOnce(ctx)
		if err != nil || n != 100 {
			b.Fatalf("RunOnce: %d %v", n, err)
		}
		faults += n
	}
	b.ReportMetric(float64(faults)/b.Elapsed().Seconds(), "faults/s")
}
