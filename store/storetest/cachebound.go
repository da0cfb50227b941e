package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// CacheBound writes n unique metric keys and n unique log sources (names a client chooses) and checks that the
// store's id caches, as reported by lens, never hold more than bound ids; then that a key and a source evicted
// long ago still resolve to their own rows.
func CacheBound(t *testing.T, s lodestone.Store, n, bound int, lens func() (keys, sources int)) {
	t.Helper()
	ctx := context.Background()
	ls := logStore(t, s)
	const per = 2000
	for i := 0; i < n; i += per {
		b := &lodestone.DeviceBatch{DeviceID: "keys", ReceivedAt: at(1)}
		var recs []*lodestone.LogRecord
		for j := i; j < min(i+per, n); j++ {
			b.Metrics = append(b.Metrics, lodestone.Metric{Key: fmt.Sprintf("k%d", j), Type: lodestone.MetricGauge,
				Value: float64(j)})
			recs = append(recs, logRec("p", fmt.Sprintf("d%d", j), 1, 9, `"x"`))
		}
		write(t, s, b)
		if err := ls.WriteLogs(ctx, recs); err != nil {
			t.Fatalf("write logs at %d: %v", i, err)
		}
		if k, src := lens(); k > bound || src > bound {
			t.Fatalf("after %d unique names: %d key ids and %d source ids cached, bound %d", i+per, k, src, bound)
		}
	}
	if k, src := lens(); k == 0 || src == 0 {
		t.Fatalf("caches unused: %d keys, %d sources", k, src)
	}
	// k0 and d0 were evicted long ago: writing them again must find their rows, not make new ones or misfile.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "keys", ReceivedAt: at(2), Metrics: []lodestone.Metric{
		{Key: "k0", Type: lodestone.MetricGauge, Value: -1}, {Key: fmt.Sprintf("k%d", n-1), Type: lodestone.MetricGauge, Value: -2}}})
	got, err := s.FindMetrics(ctx, lodestone.MetricFilter{Key: "k0"})
	if err != nil || len(got) != 2 {
		t.Fatalf("k0 metrics: %d, %v", len(got), err)
	}
	if got[0].Value != -1 || got[1].Value != 0 {
		t.Fatalf("k0 values %v %v, want -1 0", got[0].Value, got[1].Value)
	}
	if err := ls.WriteLogs(ctx, []*lodestone.LogRecord{logRec("p", "d0", 3, 9, `"again"`)}); err != nil {
		t.Fatal(err)
	}
	logs, err := ls.FindLogs(ctx, lodestone.LogFilter{Project: "p", DeviceID: "d0"})
	if err != nil || len(logs) != 2 || logs[0].Body != `"again"` {
		t.Fatalf("d0 logs: %d %v", len(logs), err)
	}
}
