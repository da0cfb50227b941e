package storetest

import (
	"context"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// testLogsLastID: LastLogID is 0 on an empty table and then the largest id written, which ScanLogs continues
// from (what the console's live tail relies on).
func testLogsLastID(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ls := logStore(t, s)
	head, ok := s.(lodestone.LogHead)
	if !ok {
		t.Fatalf("%T does not implement lodestone.LogHead", s)
	}
	scan, ok := s.(lodestone.LogScanner)
	if !ok {
		t.Fatalf("%T does not implement lodestone.LogScanner", s)
	}
	if id, err := head.LastLogID(ctx); err != nil || id != 0 {
		t.Fatalf("empty: %d %v", id, err)
	}
	first := []*lodestone.LogRecord{logRec("p", "a", 5, 9, `"x"`), logRec("p", "b", 1, 9, `"y"`)}
	if err := ls.WriteLogs(ctx, first); err != nil {
		t.Fatal(err)
	}
	id, err := head.LastLogID(ctx)
	if err != nil || id != first[1].ID {
		t.Fatalf("after two: %d %v, want %d", id, err, first[1].ID)
	}
	next := []*lodestone.LogRecord{logRec("p", "a", 0, 17, `"z"`)} // an older record time, a newer id
	if err := ls.WriteLogs(ctx, next); err != nil {
		t.Fatal(err)
	}
	got, err := scan.ScanLogs(ctx, lodestone.LogScan{AfterID: id})
	if err != nil || len(got) != 1 || got[0].ID != next[0].ID || got[0].Body != `"z"` {
		t.Fatalf("scan after the head: %+v %v", got, err)
	}
	if id, _ := head.LastLogID(ctx); id != next[0].ID {
		t.Fatalf("head %d, want %d", id, next[0].ID)
	}
}

// testCrashUploadByID: the ID filter finds one upload with its attachments, and nothing for an unknown id.
func testCrashUploadByID(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	cs := s.(lodestone.CrashUploadStore)
	sha := func(c string) string {
		out := ""
		for range 64 {
			out += c
		}
		return out
	}
	var ids []int64
	for i, install := range []string{"i1", "i2"} {
		u := &lodestone.CrashUpload{Project: "p", InstallID: install, Kind: "Minidump", Timestamp: at(i),
			Metadata: "{}", Dump: lodestone.BlobRef{SHA256: sha("a"), Size: 1}, ReceivedAt: at(i),
			Attachments: []lodestone.CrashAttachment{{Key: "log-" + install, Blob: lodestone.BlobRef{SHA256: sha("b"), Size: 2}}}}
		if err := cs.CreateCrashUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	got, err := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{ID: ids[0]})
	if err != nil || len(got) != 1 || got[0].InstallID != "i1" || len(got[0].Attachments) != 1 ||
		got[0].Attachments[0].Key != "log-i1" {
		t.Fatalf("by id: %+v %v", got, err)
	}
	if got, err := cs.FindCrashUploads(ctx, lodestone.CrashUploadFilter{ID: ids[1] + 100}); err != nil || len(got) != 0 {
		t.Fatalf("unknown id: %+v %v", got, err)
	}
}

// testLogIDsNeverReused: retention can delete the newest records (a record's own time may be old while it was the
// last one written), or all of them. The ids written next must still be larger than any id handed out before, or
// a log tail resuming after an id misses them.
func testLogIDsNeverReused(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ls := logStore(t, s)
	recs := []*lodestone.LogRecord{logRec("p", "a", 100, 9, `"kept"`), logRec("p", "a", 1, 9, `"old clock"`)}
	if err := ls.WriteLogs(ctx, recs); err != nil {
		t.Fatal(err)
	}
	top := recs[1].ID
	if n, err := ls.DeleteLogsBefore(ctx, at(50)); err != nil || n != 1 {
		t.Fatalf("delete the newest record: %d %v", n, err)
	}
	next := []*lodestone.LogRecord{logRec("p", "a", 200, 9, `"after"`), logRec("p", "b", 201, 9, `"after too"`)}
	if err := ls.WriteLogs(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ID <= top || next[1].ID != next[0].ID+1 {
		t.Fatalf("ids %d, %d after %d was deleted", next[0].ID, next[1].ID, top)
	}
	top = next[1].ID
	if _, err := ls.DeleteLogsBefore(ctx, at(1000)); err != nil { // all of them
		t.Fatal(err)
	}
	last := []*lodestone.LogRecord{logRec("p", "c", 2000, 9, `"into an empty table"`)}
	if err := ls.WriteLogs(ctx, last); err != nil {
		t.Fatal(err)
	}
	got, err := ls.FindLogs(ctx, lodestone.LogFilter{})
	if err != nil || len(got) != 1 || got[0].ID != last[0].ID || last[0].ID <= top {
		t.Fatalf("after emptying the table: id %d (largest before %d), stored %+v %v", last[0].ID, top, got, err)
	}
}
