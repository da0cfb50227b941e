package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func logStore(t *testing.T, s lodestone.Store) lodestone.LogStore {
	t.Helper()
	ls, ok := s.(lodestone.LogStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.LogStore", s)
	}
	return ls
}

func logRec(project, dev string, sec int, sev int32, body string) *lodestone.LogRecord {
	return &lodestone.LogRecord{Project: project, DeviceID: dev, Time: at(sec).Add(123), ObservedTime: at(sec + 1),
		Severity: sev, SeverityText: "X", Body: body, Attributes: `{"k":"v"}`, TraceID: "0102", SpanID: "03",
		EventName: "ev", Flags: 1, ReceivedAt: at(sec + 2)}
}

func testLogsWriteFind(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ls := logStore(t, s)
	var recs []*lodestone.LogRecord
	for i := range 300 { // more than one multi-row insert
		recs = append(recs, logRec("p", fmt.Sprintf("dev-%d", i%3), i, int32(1+i%21), fmt.Sprintf(`"line %d"`, i)))
	}
	recs = append(recs, logRec("q", "dev-0", 1000, 17, `"50% of 100_percent"`))
	if err := ls.WriteLogs(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := ls.FindLogs(ctx, lodestone.LogFilter{Limit: 1000})
	if err != nil || len(got) != 301 {
		t.Fatalf("all logs: %d %v", len(got), err)
	}
	first := got[0]
	want := recs[300]
	if first.Project != "q" || first.DeviceID != "dev-0" || !first.Time.Equal(want.Time) ||
		!first.ObservedTime.Equal(want.ObservedTime) || first.Severity != 17 || first.Body != want.Body ||
		first.Attributes != want.Attributes || first.TraceID != "0102" || first.SpanID != "03" ||
		first.EventName != "ev" || first.Flags != 1 || !first.ReceivedAt.Equal(want.ReceivedAt) || first.ID == 0 {
		t.Fatalf("round trip: %+v", first)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatal("not newest first")
		}
	}
	check := func(f lodestone.LogFilter, n int) []*lodestone.LogRecord {
		t.Helper()
		got, err := ls.FindLogs(ctx, f)
		if err != nil || len(got) != n {
			t.Fatalf("FindLogs(%+v) = %d records, %v; want %d", f, len(got), err, n)
		}
		return got
	}
	check(lodestone.LogFilter{DeviceID: "dev-1", Limit: 1000}, 100)
	check(lodestone.LogFilter{DeviceID: "dev-0", Project: "p", Limit: 1000}, 100)
	check(lodestone.LogFilter{DeviceID: "dev-0", Project: "q"}, 1)
	check(lodestone.LogFilter{DeviceID: "nobody"}, 0)
	check(lodestone.LogFilter{Since: at(10), Until: at(20)}, 10)
	check(lodestone.LogFilter{MinSeverity: 21, Limit: 1000}, 14)   // i%21 == 20 for 14 of 300
	check(lodestone.LogFilter{Text: "LINE 29", Limit: 1000}, 1+10) // 29, 290..299
	check(lodestone.LogFilter{Text: "50%", Limit: 1000}, 1)
	check(lodestone.LogFilter{Text: "0_p", Limit: 1000}, 1)
	check(lodestone.LogFilter{Text: "%", Limit: 1000}, 1)
	page := check(lodestone.LogFilter{Limit: 10, Offset: 295}, 6)
	if page[5].Body != `"line 0"` {
		t.Fatalf("last page ends with %s", page[5].Body)
	}
	n, err := ls.DeleteLogsBefore(ctx, at(100))
	if err != nil || n != 100 {
		t.Fatalf("DeleteLogsBefore: %d %v", n, err)
	}
	check(lodestone.LogFilter{Limit: 1000}, 201)
	// A second write reuses the cached source ids.
	if err := ls.WriteLogs(ctx, []*lodestone.LogRecord{logRec("p", "dev-1", 5000, 9, `"again"`)}); err != nil {
		t.Fatal(err)
	}
	check(lodestone.LogFilter{DeviceID: "dev-1", Limit: 1000}, 67+1)
}

func testLogsCanceledWriteStoresNothing(t *testing.T, s lodestone.Store) {
	ls := logStore(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ls.WriteLogs(ctx, []*lodestone.LogRecord{logRec("p", "d", 1, 9, `"x"`)}); err == nil {
		t.Fatal("a canceled write succeeded")
	}
	got, err := ls.FindLogs(context.Background(), lodestone.LogFilter{})
	if err != nil || len(got) != 0 {
		t.Fatalf("after canceled write: %d %v", len(got), err)
	}
}

func testCrashUploads(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	cs, ok := s.(lodestone.CrashUploadStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.CrashUploadStore", s)
	}
	sha := func(c byte) string {
		b := make([]byte, 64)
		for i := range b {
			b[i] = c
		}
		return string(b)
	}
	mk := func(install string, sec int, dump string, atts ...string) *lodestone.CrashUpload {
		u := &lodestone.CrashUpload{Project: "p", InstallID: install, Platform: "linux", Version: "1.0",
			Kind: "Minidump", Timestamp: at(sec), Metadata: `{"schema_version":1}`,
			Dump: lodestone.BlobRef{SHA256: dump, Size: 10}, DumpEncoding: "zstd", TokenID: "tok",
			ReceivedAt: at(sec)}
		for _, a := range atts {
			u.Attachments = append(u.Attachments, lodestone.CrashAttachment{Key: "k" + a[:1],
				ContentType: "application/json", Blob: lodestone.BlobRef{SHA256: a, Size: 3}, Dedup: true})
		}
		if err := cs.CreateCrashUpload(ctx, u); err != nil || u.ID == 0 {
			t.Fatalf("CreateCrashUpload: %v id %d", err, u.ID)
		}
		return u
	}
	mk("i1", 1, sha('a'), sha('b'), sha('c'))
	mk("i1", 2, sha('a'))
	mk("i2", 3, sha('d'), sha('b'))
	got, err := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{Project: "p", InstallID: "i1"})
	if err != nil || len(got) != 2 || got[0].ReceivedAt != at(2) || len(got[1].Attachments) != 2 ||
		got[1].Attachments[0].Blob.SHA256 != sha('b') || !got[1].Attachments[0].Dedup ||
		got[1].DumpEncoding != "zstd" || got[1].Metadata != `{"schema_version":1}` || got[1].TokenID != "tok" {
		t.Fatalf("FindCrashUploads: %+v %v", got, err)
	}
	if got, _ := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{Since: at(3)}); len(got) != 1 {
		t.Fatalf("since: %d", len(got))
	}
	ref, err := cs.CrashBlobReferenced(ctx, []string{sha('a'), sha('c'), sha('e')})
	if err != nil || !ref[sha('a')] || !ref[sha('c')] || ref[sha('e')] {
		t.Fatalf("referenced: %v %v", ref, err)
	}
	// Expiring the first two uploads frees c only: a is gone with them, b is still used by the third upload.
	n, orphans, err := cs.DeleteCrashUploadsBefore(ctx, at(3))
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	seen := map[string]bool{}
	for _, o := range orphans {
		seen[o] = true
	}
	if len(orphans) != 2 || !seen[sha('a')] || !seen[sha('c')] {
		t.Fatalf("orphans %v", orphans)
	}
	if got, _ := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{}); len(got) != 1 || got[0].InstallID != "i2" {
		t.Fatalf("after purge: %+v", got)
	}
}

// testCrashUploadIDsNeverReused: retention can empty crash_uploads (after its retention period without an
// upload). The next upload must still take a new id, or an old link /crashes/{id} shows a different crash.
func testCrashUploadIDsNeverReused(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	cs := s.(lodestone.CrashUploadStore)
	mk := func(sec int) *lodestone.CrashUpload {
		u := &lodestone.CrashUpload{Project: "p", InstallID: "i", Platform: "linux", Version: "1.0",
			Kind: "Minidump", Timestamp: at(sec), Metadata: `{}`,
			Dump: lodestone.BlobRef{SHA256: strings.Repeat("e", 64), Size: 1}, ReceivedAt: at(sec)}
		if err := cs.CreateCrashUpload(ctx, u); err != nil {
			t.Fatalf("CreateCrashUpload: %v", err)
		}
		return u
	}
	mk(1)
	top := mk(2).ID
	if n, _, err := cs.DeleteCrashUploadsBefore(ctx, at(10)); err != nil || n != 2 {
		t.Fatalf("empty the table: %d %v", n, err)
	}
	u := mk(20)
	if u.ID <= top {
		t.Fatalf("upload after the table was emptied took id %d; %d was handed out before", u.ID, top)
	}
	if got, err := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{ID: top}); err != nil || len(got) != 0 {
		t.Fatalf("the deleted upload's id finds %+v %v", got, err)
	}
	next := mk(21)
	if next.ID != u.ID+1 {
		t.Fatalf("ids %d then %d", u.ID, next.ID)
	}
	// Emptied again, then purged while empty: the floor must not fall back.
	for range 2 {
		if _, _, err := cs.DeleteCrashUploadsBefore(ctx, at(100)); err != nil {
			t.Fatal(err)
		}
	}
	if last := mk(200); last.ID <= next.ID {
		t.Fatalf("after emptying the table twice: id %d, %d was handed out before", last.ID, next.ID)
	}
}
