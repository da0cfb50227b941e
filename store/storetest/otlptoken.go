package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func testLogsScan(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ls := logStore(t, s)
	sc, ok := s.(lodestone.LogScanner)
	if !ok {
		t.Fatalf("%T does not implement lodestone.LogScanner", s)
	}
	var recs []*lodestone.LogRecord
	for i := range 250 {
		recs = append(recs, logRec([]string{"p", "q"}[i%2], fmt.Sprintf("dev-%d", i%5), 1000-i, 9,
			fmt.Sprintf(`"line %d"`, i)))
	}
	if err := ls.WriteLogs(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Pages by id in storage order, whatever the record times.
	var all []*lodestone.LogRecord
	var after int64
	for {
		page, err := sc.ScanLogs(ctx, lodestone.LogScan{AfterID: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	if len(all) != 250 {
		t.Fatalf("scanned %d records, want 250", len(all))
	}
	for i, r := range all {
		if r.Body != recs[i].Body || r.Project != recs[i].Project || r.DeviceID != recs[i].DeviceID ||
			!r.ReceivedAt.Equal(recs[i].ReceivedAt) || !r.Time.Equal(recs[i].Time) || r.Attributes != `{"k":"v"}` {
			t.Fatalf("record %d: %+v, want %+v", i, r, recs[i])
		}
		if i > 0 && r.ID <= all[i-1].ID {
			t.Fatal("not in id order")
		}
		// WriteLogs hands back consecutive ids, the stored ones.
		if r.ID != recs[i].ID || r.ID != recs[0].ID+int64(i) {
			t.Fatalf("record %d: stored id %d, WriteLogs set %d (first %d)", i, r.ID, recs[i].ID, recs[0].ID)
		}
	}
	// Filters: project, device and the receive-time range (logRec receives at sec+2).
	got, err := sc.ScanLogs(ctx, lodestone.LogScan{Project: "q", DeviceID: "dev-1", Since: at(1000 - 100 + 2),
		Until: at(1000 - 10 + 2), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, r := range recs {
		if r.Project == "q" && r.DeviceID == "dev-1" && i > 10 && i <= 100 {
			want = append(want, r.Body)
		}
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("filtered scan: %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Body != want[i] {
			t.Fatalf("filtered scan %d: %s, want %s", i, got[i].Body, want[i])
		}
	}
}

func testOTLPTokens(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ts, ok := s.(lodestone.OTLPTokenStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.OTLPTokenStore", s)
	}
	created := time.UnixMilli(1_700_000_000_123).UTC()
	a := &lodestone.OTLPToken{Name: "ci", Project: "regicide", SourcePrefix: "regicide/", Hint: "ldt_abcd",
		Hash: "aa", CreatedBy: "root", CreatedAt: created}
	if err := ts.CreateOTLPToken(ctx, a); err != nil || a.ID == 0 {
		t.Fatalf("create: %v, id %d", err, a.ID)
	}
	if err := ts.CreateOTLPToken(ctx, &lodestone.OTLPToken{Name: "ci", Project: "x", Hash: "bb", CreatedAt: created}); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("same name: %v, want conflict", err)
	}
	if err := ts.CreateOTLPToken(ctx, &lodestone.OTLPToken{Name: "other", Project: "x", Hash: "aa", CreatedAt: created}); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("same hash: %v, want conflict", err)
	}
	b := &lodestone.OTLPToken{Name: "field", Project: "x", SourcePrefix: "x/", Hint: "ldt_efgh", Hash: "cc",
		CreatedAt: created}
	if err := ts.CreateOTLPToken(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := ts.FindOTLPTokenByHash(ctx, "aa")
	if err != nil || got.ID != a.ID || got.Name != "ci" || got.Project != "regicide" || got.SourcePrefix != "regicide/" ||
		got.Hint != "ldt_abcd" || got.CreatedBy != "root" || !got.CreatedAt.Equal(created) || got.RevokedAt != nil {
		t.Fatalf("find by hash: %+v %v", got, err)
	}
	if _, err := ts.FindOTLPTokenByHash(ctx, "zz"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("unknown hash: %v", err)
	}
	first, second := created.Add(time.Hour), created.Add(2*time.Hour)
	if err := ts.RevokeOTLPToken(ctx, a.ID, first); err != nil {
		t.Fatal(err)
	}
	if err := ts.RevokeOTLPToken(ctx, a.ID, second); err != nil {
		t.Fatal(err)
	}
	if err := ts.RevokeOTLPToken(ctx, 999999, second); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("revoke unknown: %v", err)
	}
	list, err := ts.FindOTLPTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "ci" || list[1].Name != "field" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if list[0].RevokedAt == nil || !list[0].RevokedAt.Equal(first) || list[1].RevokedAt != nil {
		t.Fatalf("revocation times: %v %v", list[0].RevokedAt, list[1].RevokedAt)
	}
}

// testLogsConcurrentIDs: writers running at once each get a run of consecutive ids that no other writer got.
func testLogsConcurrentIDs(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	ls := logStore(t, s)
	batches := make([][]*lodestone.LogRecord, 8)
	errs := make(chan error, len(batches))
	for w := range batches {
		for i := range 300 {
			batches[w] = append(batches[w], logRec("p", fmt.Sprintf("dev-%d", w), i, 9, fmt.Sprintf(`"%d %d"`, w, i)))
		}
		go func() { errs <- ls.WriteLogs(ctx, batches[w]) }()
	}
	for range batches {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ids := map[int64]bool{}
	for w, b := range batches {
		for i, r := range b {
			if r.ID != b[0].ID+int64(i) || r.ID <= 0 || ids[r.ID] {
				t.Fatalf("writer %d record %d: id %d (first %d), or taken twice", w, i, r.ID, b[0].ID)
			}
			ids[r.ID] = true
		}
	}
}
