package transfer_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/storetest"
	"github.com/lodestone-fleet/lodestone/store/transfer"
)

var base = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func openPair(t *testing.T) (*sqlite.DB, *postgres.DB) {
	t.Helper()
	ctx := context.Background()
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "src.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	dst, err := postgres.Open(ctx, pgtest.URL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	return src, dst
}

// populate writes every kind of record through the real SQLite store.
func populate(t *testing.T, s lodestone.Store, devices, rounds int) {
	t.Helper()
	ctx := context.Background()
	key := uint32(0xA1B2C3D4)
	for r := range rounds {
		var batches []*lodestone.DeviceBatch
		for d := range devices {
			b := &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%03d", d), ReceivedAt: base.Add(time.Duration(r) * time.Minute),
				Info: &lodestone.DeviceInfo{FirmwareVersion: fmt.Sprintf("1.%d.0", r), BuildID: math.MaxUint64 - uint64(d)},
				Metrics: []lodestone.Metric{
					{Key: "temp", Type: lodestone.MetricGauge, Value: float64(d) + 0.5, Ticks: uint64(r)},
					{Key: "nan", Type: lodestone.MetricGauge, Value: math.NaN()},
					{Key: "lat", Type: lodestone.MetricHistogram, Value: 1, Max: 9.75},
					{Key: "blob", Type: 7, Raw: []byte{byte(d), 2, 3}},
				},
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(r) << 40, FreeStack: 512, DeviceKey: key}},
				Reboots:    []lodestone.Reboot{{Reason: 3, Extra: 1, BootSequence: uint32(r), UptimeBeforeReboot: math.MaxUint32}},
				Faults: []lodestone.Fault{{FaultType: 2, Registers: lodestone.Registers{PC: 0x08001234, LR: 0xFFFFFFF9},
					Stack: [16]uint32{1, 2, 3, 0xDEADBEEF}, CFSR: 0x8200, BFAR: 0x20001000}},
				OtaRequests:    []lodestone.OtaRequest{{BuildID: 7, MaxChunkSize: 4096, OtaCapable: 1}},
				TraceFragments: []lodestone.TraceFragment{{Offset: 0, Data: []byte("trace-"), Last: r%2 == 1}},
			}
			batches = append(batches, b)
		}
		if err := s.WriteTelemetry(ctx, batches); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetSettingIfAbsent(ctx, "admin_password_hash", "$2a$10$abc"); err != nil {
		t.Fatal(err)
	}
}

func TestCopyMovesEveryRowAndKeepsWorking(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	populate(t, src, 12, 5)

	var reports []transfer.Progress
	counts, err := transfer.Copy(ctx, src.ReadDB(), dst.Pool(), func(p transfer.Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	byTable := map[string]transfer.Count{}
	for _, c := range counts {
		byTable[c.Table] = c
		if c.Source != c.Destination {
			t.Fatalf("%s: %d vs %d", c.Table, c.Source, c.Destination)
		}
	}
	if byTable["devices"].Source != 12 || byTable["metrics"].Source != 12*5*4 || byTable["settings"].Source != 1 {
		t.Fatalf("unexpected counts: %+v", counts)
	}
	last := reports[len(reports)-1]
	if last.Rows != last.Total || last.Total == 0 {
		t.Fatalf("progress ended at %d of %d", last.Rows, last.Total)
	}

	// Both stores answer every read the same way.
	compare(t, src, dst)
	if v, err := dst.Setting(ctx, "admin_password_hash"); err != nil || v != "$2a$10$abc" {
		t.Fatalf("setting after copy: %q %v", v, err)
	}

	// New rows get new ids after the copied ones, and existing devices and metric keys are reused.
	if err := dst.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "dev-000", ReceivedAt: base.Add(time.Hour),
		Metrics: []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: 99}}}}); err != nil {
		t.Fatalf("write after copy: %v", err)
	}
	ms, err := dst.FindMetrics(ctx, lodestone.MetricFilter{Key: "temp", TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "dev-000"}})
	if err != nil || len(ms) != 6 || ms[0].Value != 99 || ms[0].ID <= ms[1].ID {
		t.Fatalf("metrics after a new write: %v %v", ms, err)
	}
	devs, err := dst.FindDevices(ctx, lodestone.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 12 {
		t.Fatalf("%d devices after a new write", len(devs))
	}

	// A second copy into the now populated database is refused, and changes nothing.
	if _, err := transfer.Copy(ctx, src.ReadDB(), dst.Pool(), nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a populated database: %v", err)
	}
}

func compare(t *testing.T, a, b lodestone.Store) {
	t.Helper()
	ctx := context.Background()
	da := must(t, "devices", func() ([]*lodestone.Device, error) { return a.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1000}) })
	db := must(t, "devices", func() ([]*lodestone.Device, error) { return b.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1000}) })
	if len(da) == 0 || fmt.Sprint(deref(da)) != fmt.Sprint(deref(db)) {
		t.Fatalf("devices differ:\n%v\n%v", deref(da), deref(db))
	}
	f := lodestone.TelemetryFilter{Limit: 1000}
	fa := must(t, "faults", func() ([]*lodestone.Fault, error) { return a.FindFaults(ctx, f) })
	fb := must(t, "faults", func() ([]*lodestone.Fault, error) { return b.FindFaults(ctx, f) })
	if len(fa) == 0 || fmt.Sprint(deref(fa)) != fmt.Sprint(deref(fb)) {
		t.Fatalf("faults differ: %d vs %d", len(fa), len(fb))
	}
	mf := lodestone.MetricFilter{TelemetryFilter: f}
	ma := must(t, "metrics", func() ([]*lodestone.Metric, error) { return a.FindMetrics(ctx, mf) })
	mb := must(t, "metrics", func() ([]*lodestone.Metric, error) { return b.FindMetrics(ctx, mf) })
	if len(ma) == 0 || len(ma) != len(mb) {
		t.Fatalf("metrics: %d vs %d", len(ma), len(mb))
	}
	for i := range ma {
		x, y := ma[i], mb[i]
		same := func(p, q float64) bool { return p == q || math.IsNaN(p) && math.IsNaN(q) }
		if x.ID != y.ID || x.Key != y.Key || x.Type != y.Type || !same(x.Value, y.Value) || !same(x.Max, y.Max) ||
			!bytes.Equal(x.Raw, y.Raw) || !x.ReceivedAt.Equal(y.ReceivedAt) {
			t.Fatalf("metric %d differs: %+v vs %+v", i, x, y)
		}
	}
	// Each pair of listings renders the same and is not empty; a lookup that fails fails the test.
	list := func(name string, find func() (int, string, error)) (int, string) {
		n, s, err := find()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n, s
	}
	for name, pair := range map[string][2]func() (int, string, error){
		"reboots": {func() (int, string, error) { v, err := a.FindReboots(ctx, f); return len(v), fmt.Sprint(deref(v)), err },
			func() (int, string, error) { v, err := b.FindReboots(ctx, f); return len(v), fmt.Sprint(deref(v)), err }},
		"heartbeats": {func() (int, string, error) {
			v, err := a.FindHeartbeats(ctx, f)
			return len(v), fmt.Sprint(deref(v)), err
		},
			func() (int, string, error) {
				v, err := b.FindHeartbeats(ctx, f)
				return len(v), fmt.Sprint(deref(v)), err
			}},
		"traces": {func() (int, string, error) { v, err := a.FindTraces(ctx, f); return len(v), fmt.Sprint(deref(v)), err },
			func() (int, string, error) { v, err := b.FindTraces(ctx, f); return len(v), fmt.Sprint(deref(v)), err }},
		"ota": {func() (int, string, error) {
			v, err := a.FindOtaRequests(ctx, f)
			return len(v), fmt.Sprint(deref(v)), err
		},
			func() (int, string, error) {
				v, err := b.FindOtaRequests(ctx, f)
				return len(v), fmt.Sprint(deref(v)), err
			}},
	} {
		na, sa := list(name, pair[0])
		nb, sb := list(name, pair[1])
		if na == 0 || sa != sb || na != nb {
			t.Fatalf("%s differ (%d vs %d)", name, na, nb)
		}
	}
}

// must returns find's result, failing the test with what on an error.
func must[T any](t *testing.T, what string, find func() (T, error)) T {
	t.Helper()
	v, err := find()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func deref[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// TestTablesMatchBothSchemas fails when a migration adds a table or column that the copy would leave behind.
func TestTablesMatchBothSchemas(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	want := map[string][]string{}
	for _, tb := range transfer.Tables {
		c := slices.Clone(tb.Cols)
		slices.Sort(c)
		want[tb.Name] = c
	}
	sqliteTables := map[string][]string{}
	rows, err := src.ReadDB().QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, col string
		rows.Scan(&tbl, &col)
		sqliteTables[tbl] = append(sqliteTables[tbl], col)
	}
	rows.Close()
	pgTables := map[string][]string{}
	prow, err := dst.Pool().Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'`)
	if err != nil {
		t.Fatal(err)
	}
	for prow.Next() {
		var tbl, col string
		prow.Scan(&tbl, &col)
		pgTables[tbl] = append(pgTables[tbl], col)
	}
	prow.Close()
	for name, got := range map[string]map[string][]string{"sqlite": sqliteTables, "postgres": pgTables} {
		for tbl, cols := range got {
			slices.Sort(cols)
			if _, ok := want[tbl]; !ok {
				// Replicas' live event log and console sessions are transient, not part of an instance.
				if tbl == "events" || tbl == "event_listeners" || tbl == "sessions" {
					continue
				}
				if tbl == "metric_rollups" && name == "sqlite" { // derived: SQLite's fleet rollups, which PostgreSQL does not keep
					continue
				}
				t.Errorf("%s table %s is not copied by transfer.Tables", name, tbl)
				continue
			}
			if !slices.Equal(cols, want[tbl]) {
				t.Errorf("%s table %s has columns %v; transfer.Tables lists %v", name, tbl, cols, want[tbl])
			}
		}
		for tbl := range want {
			if _, ok := got[tbl]; !ok {
				t.Errorf("transfer.Tables lists %s, which the %s schema lacks", tbl, name)
			}
		}
	}
}

func TestCopyBlobs(t *testing.T) {
	ctx := context.Background()
	from, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	to, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var refs []lodestone.BlobRef
	for i := range 5 {
		r, _, err := from.Put(ctx, strings.NewReader(strings.Repeat(fmt.Sprint(i), 1000*(i+1))), 0)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if _, _, err := to.Put(ctx, strings.NewReader(strings.Repeat("0", 1000)), 0); err != nil {
		t.Fatal(err)
	}
	var last transfer.BlobProgress
	copied, present, err := transfer.CopyBlobs(ctx, from, to, func(p transfer.BlobProgress) { last = p })
	if err != nil || copied != 4 || present != 1 {
		t.Fatalf("copied %d, present %d, %v", copied, present, err)
	}
	if last.Blobs != 5 || last.Bytes != last.TotalBytes || last.TotalBytes != 15000 {
		t.Fatalf("progress %+v", last)
	}
	for _, r := range refs {
		if got, err := to.Stat(ctx, r.SHA256); err != nil || got != r {
			t.Fatalf("blob %s in the destination: %v %v", r.SHA256, got, err)
		}
	}
}

// TestCopyKeepsSealedMetrics copies a SQLite database whose points are partly sealed into blocks: PostgreSQL
// gets the blocks as they are, and answers as the source does.
func TestCopyKeepsSealedMetrics(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	populate(t, src, 12, 5)
	if err := src.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
		t.Fatal(err)
	}
	// (No tags: compare prints devices with %v, and a tag is a pointer.) The older part of SealFleet's points; populate's stay rows.
	n, err := src.SealMetrics(ctx, time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC))
	if err != nil || n == 0 {
		t.Fatalf("sealed %d points, %v", n, err)
	}
	counts, err := transfer.Copy(ctx, src.ReadDB(), dst.Pool(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Table == "metric_blocks" && c.Destination == 0 {
			t.Fatal("no blocks copied")
		}
	}
	compare(t, src, dst)
	storetest.CompareSealReads(t, "copied", storetest.SealReads(t, src), storetest.SealReads(t, dst))
	// New rows are numbered after the sealed ones.
	if err := dst.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "dev-000", ReceivedAt: base.Add(time.Hour),
		Metrics: []lodestone.Metric{{Key: "temp", Type: lodestone.MetricGauge, Value: 99}}}}); err != nil {
		t.Fatal(err)
	}
	ms, err := dst.FindMetrics(ctx, lodestone.MetricFilter{Key: "temp", TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "dev-000"}})
	if err != nil || len(ms) != 6 || ms[0].Value != 99 || ms[0].ID <= ms[1].ID {
		t.Fatalf("metrics after a new write: %v %v", ms, err)
	}
}

// Ids SQLite's retention deleted from the top of logs and crash_uploads are not handed out again after a copy
// either: PostgreSQL's sequences start after the floors SQLite kept.
func TestCopyKeepsIDFloors(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	recs := []*lodestone.LogRecord{
		{Project: "p", DeviceID: "d", Time: base, ObservedTime: base, Body: `"kept"`, Attributes: "{}", ReceivedAt: base},
		{Project: "p", DeviceID: "d", Time: base.Add(-48 * time.Hour), ObservedTime: base, Body: `"old clock"`,
			Attributes: "{}", ReceivedAt: base},
	}
	if err := src.WriteLogs(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if n, err := src.DeleteLogsBefore(ctx, base.Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("delete the newest log record: %d %v", n, err)
	}
	mk := func(s lodestone.CrashUploadStore, at time.Time) *lodestone.CrashUpload {
		u := &lodestone.CrashUpload{Project: "p", InstallID: "i", Platform: "linux", Version: "1", Kind: "Minidump",
			Timestamp: at, Metadata: "{}", Dump: lodestone.BlobRef{SHA256: strings.Repeat("a", 64), Size: 1}, ReceivedAt: at}
		if err := s.CreateCrashUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	mk(src, base)
	top := mk(src, base).ID
	if _, _, err := src.DeleteCrashUploadsBefore(ctx, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := transfer.Copy(ctx, src.ReadDB(), dst.Pool(), nil); err != nil {
		t.Fatal(err)
	}
	next := []*lodestone.LogRecord{{Project: "p", DeviceID: "d", Time: base, ObservedTime: base, Body: `"after"`,
		Attributes: "{}", ReceivedAt: base}}
	if err := dst.WriteLogs(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ID <= recs[1].ID {
		t.Errorf("first log record after the copy took id %d; %d was handed out before", next[0].ID, recs[1].ID)
	}
	if u := mk(dst, base.Add(time.Hour)); u.ID <= top {
		t.Errorf("first crash upload after the copy took id %d; %d was handed out before", u.ID, top)
	}
}
