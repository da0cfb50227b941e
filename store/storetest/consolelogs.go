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
