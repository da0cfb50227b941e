package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func testMetrics(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "m", ReceivedAt: at(1), Metrics: []lodestone.Metric{
		{Key: "clicks", Type: lodestone.MetricCounter, Value: 42, Ticks: 1000},
		{Key: "temp", Type: lodestone.MetricGauge, Value: 25.5, Ticks: 2000},
		{Key: "lat", Type: lodestone.MetricHistogram, Value: 1.5, Max: 8.25, Ticks: 3000},
		{Key: "odd", Type: 9, Raw: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Ticks: math.MaxUint64},
	}})
	got, err := s.FindMetrics(ctx, lodestone.MetricFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d metrics, want 4", len(got))
	}
	// Same instant: newest-first falls back to the row id, so the last written comes first.
	want := []struct {
		key        string
		typ        lodestone.MetricType
		value, max float64
		ticks      uint64
	}{{"odd", 9, 0, 0, math.MaxUint64}, {"lat", 2, 1.5, 8.25, 3000}, {"temp", 1, 25.5, 0, 2000},
		{"clicks", 0, 42, 0, 1000}}
	dev := mustDevice(t, s, "m")
	for i, w := range want {
		m := got[i]
		if m.Key != w.key || m.Type != w.typ || m.Ticks != w.ticks || m.DeviceID != "m" || m.DeviceRowID != dev.ID ||
			!m.ReceivedAt.Equal(at(1)) || m.ID == 0 {
			t.Fatalf("metric %d = %+v, want %+v", i, m, w)
		}
		if w.typ <= 2 && (m.Value != w.value || m.Max != w.max) {
			t.Fatalf("metric %s value %v max %v, want %v %v", w.key, m.Value, m.Max, w.value, w.max)
		}
	}
	if !bytes.Equal(got[0].Raw, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("raw bytes of unknown type: %x", got[0].Raw)
	}
}

func testMetricSpecialFloats(t *testing.T, s lodestone.Store) {
	write(t, s, &lodestone.DeviceBatch{DeviceID: "f", ReceivedAt: at(1), Metrics: []lodestone.Metric{
		{Key: "nan", Type: lodestone.MetricGauge, Value: math.NaN()},
		{Key: "inf", Type: lodestone.MetricGauge, Value: math.Inf(1)},
		{Key: "h", Type: lodestone.MetricHistogram, Value: math.Inf(-1), Max: math.NaN()},
	}})
	got, err := s.FindMetrics(context.Background(), lodestone.MetricFilter{})
	if err != nil || len(got) != 3 {
		t.Fatalf("got %d metrics, err %v", len(got), err)
	}
	byKey := map[string]*lodestone.Metric{}
	for _, m := range got {
		byKey[m.Key] = m
	}
	if !math.IsNaN(byKey["nan"].Value) || !math.IsInf(byKey["inf"].Value, 1) ||
		!math.IsInf(byKey["h"].Value, -1) || !math.IsNaN(byKey["h"].Max) {
		t.Fatalf("special floats: nan=%v inf=%v h=%v/%v", byKey["nan"].Value, byKey["inf"].Value,
			byKey["h"].Value, byKey["h"].Max)
	}
}

func testMetricFilters(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	for i := range 10 {
		dev := "a"
		if i%2 == 1 {
			dev = "b"
		}
		write(t, s, &lodestone.DeviceBatch{DeviceID: dev, ReceivedAt: at(i * 10), Metrics: []lodestone.Metric{
			{Key: "k", Type: lodestone.MetricCounter, Value: float64(i)},
			{Key: "other", Type: lodestone.MetricCounter, Value: float64(100 + i)},
		}})
	}
	count := func(f lodestone.MetricFilter) []*lodestone.Metric {
		t.Helper()
		got, err := s.FindMetrics(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if n := len(count(lodestone.MetricFilter{})); n != 20 {
		t.Fatalf("all: %d", n)
	}
	if n := len(count(lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "a"}})); n != 10 {
		t.Fatalf("device a: %d", n)
	}
	byKey := count(lodestone.MetricFilter{Key: "k", TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "b"}})
	if len(byKey) != 5 || byKey[0].Value != 9 || byKey[4].Value != 1 {
		t.Fatalf("device b key k: %d rows, first %v", len(byKey), byKey)
	}
	// Since is inclusive, until exclusive.
	win := count(lodestone.MetricFilter{Key: "k", TelemetryFilter: lodestone.TelemetryFilter{Since: at(20), Until: at(50)}})
	if len(win) != 3 || win[0].Value != 4 || win[2].Value != 2 {
		t.Fatalf("window [20s,50s): %d rows", len(win))
	}
	page := count(lodestone.MetricFilter{Key: "k", TelemetryFilter: lodestone.TelemetryFilter{Limit: 3, Offset: 3}})
	if len(page) != 3 || page[0].Value != 6 {
		t.Fatalf("page: %+v", page)
	}
	if n := len(count(lodestone.MetricFilter{Key: "missing"})); n != 0 {
		t.Fatalf("unknown key: %d rows", n)
	}
	if n := len(count(lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 5000}})); n != 20 {
		t.Fatalf("large limit: %d", n)
	}
}

func testFaults(t *testing.T, s lodestone.Store) {
	f := lodestone.Fault{FaultType: 2, CFSR: 0x400, HFSR: 0x40000000, MMFAR: 0xE000ED34, BFAR: 0xFFFFFFFF,
		Registers: lodestone.Registers{R0: 1, R1: 2, R2: 3, R3: 4, R12: 5, LR: 0x08001000, PC: 0x08002000,
			XPSR: 0x61000000, R4: 10, R5: 11, R6: 12, R7: 13, R8: 14, R9: 15, R10: 16, R11: 17, SP: 0x20003F00}}
	for i := range f.Stack {
		f.Stack[i] = 0xDEADBEEF - uint32(i)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "crashy", ReceivedAt: at(3), Faults: []lodestone.Fault{f}})
	got, err := s.FindFaults(context.Background(), lodestone.TelemetryFilter{DeviceID: "crashy"})
	if err != nil || len(got) != 1 {
		t.Fatalf("faults: %d, %v", len(got), err)
	}
	g := got[0]
	if g.Registers != f.Registers || g.Stack != f.Stack || g.FaultType != 2 || g.CFSR != f.CFSR || g.HFSR != f.HFSR ||
		g.MMFAR != f.MMFAR || g.BFAR != f.BFAR || g.DeviceID != "crashy" || !g.ReceivedAt.Equal(at(3)) {
		t.Fatalf("fault round trip:\n got %+v\nwant %+v", g, f)
	}
	if g.Symbol != nil || g.CrashGroupID != nil {
		t.Fatalf("unsymbolicated fault has symbol %v group %v", g.Symbol, g.CrashGroupID)
	}
}

func testRebootsHeartbeatsOtaRequests(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "r", ReceivedAt: at(7),
		Reboots:     []lodestone.Reboot{{Reason: 4, Extra: 1, BootSequence: 42, UptimeBeforeReboot: 100000}},
		Heartbeats:  []lodestone.Heartbeat{{UptimeTicks: 1 << 40, FreeStack: 1024, MetricsCount: 5, FramesLost: 2, DeviceKey: 0xA300F1B2}},
		OtaRequests: []lodestone.OtaRequest{{BuildID: 0xDEADBEEF, MaxChunkSize: 256, OtaCapable: 1}},
	})
	rb, err := s.FindReboots(ctx, lodestone.TelemetryFilter{DeviceID: "r"})
	if err != nil || len(rb) != 1 || rb[0].Reason != 4 || rb[0].Extra != 1 || rb[0].BootSequence != 42 ||
		rb[0].UptimeBeforeReboot != 100000 || rb[0].DeviceID != "r" {
		t.Fatalf("reboots %+v %v", rb, err)
	}
	hb, err := s.FindHeartbeats(ctx, lodestone.TelemetryFilter{DeviceID: "r"})
	if err != nil || len(hb) != 1 || hb[0].UptimeTicks != 1<<40 || hb[0].FreeStack != 1024 || hb[0].MetricsCount != 5 ||
		hb[0].FramesLost != 2 || hb[0].DeviceKey != 0xA300F1B2 {
		t.Fatalf("heartbeats %+v %v", hb, err)
	}
	ota, err := s.FindOtaRequests(ctx, lodestone.TelemetryFilter{})
	if err != nil || len(ota) != 1 || ota[0].BuildID != 0xDEADBEEF || ota[0].MaxChunkSize != 256 || ota[0].OtaCapable != 1 {
		t.Fatalf("ota requests %+v %v", ota, err)
	}
}

func testTraceAcrossWrites(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t", ReceivedAt: at(1),
		TraceFragments: []lodestone.TraceFragment{{Offset: 5, Data: []byte(" world")}}})
	if tr, _ := s.FindTraces(ctx, lodestone.TelemetryFilter{}); len(tr) != 0 {
		t.Fatalf("trace assembled before the last fragment: %q", tr[0].Data)
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t", ReceivedAt: at(2),
		TraceFragments: []lodestone.TraceFragment{{Offset: 0, Data: []byte("hello")}, {Offset: 11, Data: []byte("!"), Last: true}}})
	tr, err := s.FindTraces(ctx, lodestone.TelemetryFilter{DeviceID: "t"})
	if err != nil || len(tr) != 1 || string(tr[0].Data) != "hello world!" {
		t.Fatalf("traces %v %v", tr, err)
	}
	// The next trace starts from scratch.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "t", ReceivedAt: at(3),
		TraceFragments: []lodestone.TraceFragment{{Offset: 0, Data: []byte("again"), Last: true}}})
	tr, _ = s.FindTraces(ctx, lodestone.TelemetryFilter{DeviceID: "t"})
	if len(tr) != 2 || string(tr[0].Data) != "again" {
		t.Fatalf("second trace: %d traces", len(tr))
	}
}

func testTraceGapKeepsFragments(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "g", ReceivedAt: at(1),
		TraceFragments: []lodestone.TraceFragment{{Offset: 0, Data: []byte("ab")}, {Offset: 10, Data: []byte("z"), Last: true}}})
	if tr, _ := s.FindTraces(ctx, lodestone.TelemetryFilter{}); len(tr) != 0 {
		t.Fatalf("a trace with a gap was assembled: %q", tr[0].Data)
	}
	// The missing bytes arriving later complete it.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "g", ReceivedAt: at(2),
		TraceFragments: []lodestone.TraceFragment{{Offset: 2, Data: []byte("cdefghij"), Last: true}}})
	tr, err := s.FindTraces(ctx, lodestone.TelemetryFilter{})
	if err != nil || len(tr) != 1 || string(tr[0].Data) != "abcdefghijz" {
		t.Fatalf("traces after gap filled: %v %v", tr, err)
	}
}

func testManyBatchesOneTransaction(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	var batches []*lodestone.DeviceBatch
	for i := range 300 {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%03d", i%50), ReceivedAt: at(i),
			Info:    info("1.0", uint64(i)),
			Metrics: []lodestone.Metric{{Key: fmt.Sprintf("key-%d", i%7), Type: lodestone.MetricCounter, Value: float64(i)}}})
	}
	write(t, s, batches...)
	devs, err := s.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1000})
	if err != nil || len(devs) != 50 {
		t.Fatalf("devices %d %v", len(devs), err)
	}
	// The last batch of a device wins for firmware and last seen.
	d := mustDevice(t, s, "dev-049")
	if d.BuildID != 299 || !d.LastSeen.Equal(at(299)) || !d.FirstSeen.Equal(at(49)) {
		t.Fatalf("dev-049: %+v", d)
	}
	ms, err := s.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 1000}})
	if err != nil || len(ms) != 300 {
		t.Fatalf("metrics %d %v", len(ms), err)
	}
}

func testCanceledWriteStoresNothing(t *testing.T, s lodestone.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "x", ReceivedAt: at(0),
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricCounter, Value: 1}}}})
	if err == nil {
		t.Fatal("write with a canceled context succeeded")
	}
	if _, err := s.FindDeviceByID(context.Background(), "x"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("device exists after failed write: %v", err)
	}
	// The metric key must not be remembered from the failed transaction.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "x", ReceivedAt: at(1),
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricCounter, Value: 2}}})
	ms, err := s.FindMetrics(context.Background(), lodestone.MetricFilter{Key: "k"})
	if err != nil || len(ms) != 1 || ms[0].Value != 2 {
		t.Fatalf("metrics after retry: %v %v", ms, err)
	}
}

func testUnknownDeviceFilterIsEmpty(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "known", ReceivedAt: at(0),
		Faults: []lodestone.Fault{{}}, Metrics: []lodestone.Metric{{Key: "k"}}})
	f := lodestone.TelemetryFilter{DeviceID: "unknown-device"}
	if got, err := s.FindFaults(ctx, f); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("faults of unknown device: %v %v", got, err)
	}
	if got, err := s.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: f}); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("metrics of unknown device: %v %v", got, err)
	}
}
