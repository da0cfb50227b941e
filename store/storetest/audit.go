package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func auditStore(t testing.TB, s lodestone.Store) lodestone.AuditStore {
	t.Helper()
	a, ok := s.(lodestone.AuditStore)
	if !ok {
		t.Fatalf("%T does not implement lodestone.AuditStore", s)
	}
	return a
}

// operator is a context as an entry point builds it for an admin user calling through the API.
func operator(name string) context.Context {
	ctx := lodestone.NewContextWithPrincipal(context.Background(),
		&lodestone.Principal{Name: name, Role: lodestone.RoleAdmin, Kind: lodestone.ActorUser})
	return lodestone.NewContextWithAuditRequest(ctx,
		lodestone.AuditRequest{ClientAddr: "192.0.2.7", RequestID: "req-" + name, Via: lodestone.ViaAPI})
}

func allAudit(t testing.TB, a lodestone.AuditStore) []*lodestone.AuditEntry {
	t.Helper()
	es, err := a.FindAudit(context.Background(), lodestone.AuditFilter{Limit: lodestone.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func mustVerify(t testing.TB, a lodestone.AuditStore) *lodestone.AuditVerification {
	t.Helper()
	head, err := a.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := lodestone.VerifyAuditChain(context.Background(), a, &head)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testAuditAppendFind appends entries directly and reads them back through every filter and page.
func testAuditAppendFind(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	a := auditStore(t, s)
	if es := allAudit(t, a); len(es) != 0 {
		t.Fatalf("a new store has %d audit entries", len(es))
	}
	if v := mustVerify(t, a); !v.OK || v.Checked != 0 {
		t.Fatalf("verify of an empty log: %+v", v)
	}
	var want []*lodestone.AuditEntry
	for i := range 7 {
		e := &lodestone.AuditEntry{Time: at(i), ActorKind: lodestone.ActorUser, Actor: []string{"ann", "bob"}[i%2],
			Action: []string{"group.create", "group.delete", "backup.download"}[i%3], TargetKind: "group",
			Target: fmt.Sprint(i % 3), After: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`), ClientAddr: "10.0.0.1",
			RequestID: fmt.Sprint("r", i), Via: lodestone.ViaAPI}
		if err := a.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.ID != int64(i+1) || e.Hash == "" || e.Hash != e.ComputeHash() {
			t.Fatalf("appended entry %d: id %d hash %q", i, e.ID, e.Hash)
		}
		if i > 0 && e.PrevHash != want[i-1].Hash {
			t.Fatalf("entry %d names prev hash %q, want %q", e.ID, e.PrevHash, want[i-1].Hash)
		}
		want = append(want, e)
	}
	if err := a.AppendAudit(ctx, &lodestone.AuditEntry{Actor: "x"}); lodestone.ErrorCode(err) != lodestone.EINVALID {
		t.Fatalf("entry without action: %v, want invalid", err)
	}

	got := allAudit(t, a)
	if len(got) != 7 || got[0].ID != 7 || got[6].ID != 1 {
		t.Fatalf("FindAudit: %d entries, want 7 newest first", len(got))
	}
	w := want[6]
	g := got[0]
	if g.Actor != w.Actor || g.Action != w.Action || g.Target != w.Target || g.TargetKind != w.TargetKind ||
		string(g.After) != string(w.After) || g.Before != nil || g.ClientAddr != w.ClientAddr ||
		g.RequestID != w.RequestID || g.Via != w.Via || !g.Time.Equal(w.Time) || g.Hash != w.Hash ||
		g.PrevHash != w.PrevHash {
		t.Fatalf("read back %+v, want %+v", g, w)
	}

	ids := func(f lodestone.AuditFilter) string {
		es, err := a.FindAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprint(e.ID))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    lodestone.AuditFilter
		want string
	}{
		{lodestone.AuditFilter{Actor: "ann"}, "7,5,3,1"},
		{lodestone.AuditFilter{Action: "group.delete"}, "5,2"},
		{lodestone.AuditFilter{Action: "group.*"}, "7,5,4,2,1"},
		{lodestone.AuditFilter{Action: "grou.*"}, ""},
		{lodestone.AuditFilter{Target: "0"}, "7,4,1"},
		{lodestone.AuditFilter{Target: "0", TargetKind: "device"}, ""},
		{lodestone.AuditFilter{Since: at(2), Until: at(5)}, "5,4,3"},
		{lodestone.AuditFilter{Limit: 3}, "7,6,5"},
		{lodestone.AuditFilter{Limit: 3, BeforeID: 5}, "4,3,2"},
		{lodestone.AuditFilter{Actor: "bob", BeforeID: 6}, "4,2"},
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("FindAudit(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	v := mustVerify(t, a)
	if !v.OK || v.Checked != 7 || v.FirstID != 1 || v.LastID != 7 {
		t.Fatalf("verify: %+v", v)
	}
	head, err := a.AuditHead(ctx)
	if err != nil || head.ID != 7 || head.Hash != want[6].Hash {
		t.Fatalf("head = %+v, %v", head, err)
	}
}

// testAuditStoreWrites checks that the store records an operator's writes itself, in their transaction, with
// before and after images and no secret, and records nothing for writes nobody operated.
func testAuditStoreWrites(t *testing.T, s lodestone.Store) {
	a := auditStore(t, s)
	c := creds(t, s)
	ctx := operator("ann")

	// Writes without an operator: ingest, background jobs, devices.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "dev-1", ReceivedAt: at(0), Info: info("1.0.0", 1)})
	if err := s.CreateGroup(context.Background(), &lodestone.Group{Name: "quiet", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	devCtx := lodestone.NewContextWithPrincipal(context.Background(),
		&lodestone.Principal{Name: "dev-1", DeviceID: "dev-1"})
	if err := s.CreateGroup(devCtx, &lodestone.Group{Name: "by-device", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	if es := allAudit(t, a); len(es) != 0 {
		t.Fatalf("writes without an operator left %d entries: %+v", len(es), es[0])
	}

	g := &lodestone.Group{Name: "lab", CreatedAt: at(1)}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	desc := "bench units"
	if _, err := s.UpdateGroup(ctx, g.ID, lodestone.GroupUpdate{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroupDevice(ctx, g.ID, "dev-1", at(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	const secretHash = "$2a$10$SECRETPASSWORDHASHxxxxxxxxxxxxxxxxxxxx"
	if err := c.CreateUser(ctx, &lodestone.User{Name: "bob", Role: lodestone.RoleViewer, PasswordHash: secretHash,
		CreatedAt: at(3), UpdatedAt: at(3)}); err != nil {
		t.Fatal(err)
	}
	tokCtx := lodestone.NewContextWithPrincipal(ctx, &lodestone.Principal{Name: "ci", Role: lodestone.RoleAdmin,
		Kind: lodestone.ActorToken, TokenID: 42})
	tok := &lodestone.Token{Kind: lodestone.TokenAPI, Name: "deploy", Role: lodestone.RoleViewer,
		Hint: "lst_SECR", Hash: "SECRETTOKENHASH0123456789", CreatedBy: "ann", CreatedAt: at(4)}
	if err := c.CreateToken(tokCtx, tok); err != nil {
		t.Fatal(err)
	}

	es := allAudit(t, a)
	type want struct{ action, target string }
	wants := []want{{"token.create", fmt.Sprint(tok.ID)}, {"user.create", "bob"}, {"group.delete", fmt.Sprint(g.ID)},
		{"group.add_device", fmt.Sprint(g.ID, "/dev-1")}, {"group.update", fmt.Sprint(g.ID)},
		{"group.create", fmt.Sprint(g.ID)}}
	if len(es) != len(wants) {
		t.Fatalf("%d entries, want %d: %+v", len(es), len(wants), es)
	}
	for i, w := range wants {
		e := es[i]
		if e.Action != w.action || e.Target != w.target {
			t.Errorf("entry %d: %s %s, want %s %s", e.ID, e.Action, e.Target, w.action, w.target)
		}
		if e.ClientAddr != "192.0.2.7" || e.RequestID != "req-ann" || e.Via != lodestone.ViaAPI {
			t.Errorf("entry %d request: %q %q %q", e.ID, e.ClientAddr, e.RequestID, e.Via)
		}
		for _, b := range []json.RawMessage{e.Before, e.After} {
			if b != nil && !json.Valid(b) {
				t.Errorf("entry %d image is not JSON: %s", e.ID, b)
			}
		}
		text := fmt.Sprintf("%+v %s %s", *e, e.Before, e.After)
		for _, secret := range []string{"SECRETPASSWORD", "SECRETTOKENHASH", "lst_SECR"} {
			if strings.Contains(text, secret) {
				t.Errorf("entry %d holds a secret: %s", e.ID, text)
			}
		}
	}
	if e := es[0]; e.ActorKind != lodestone.ActorToken || e.Actor != "ci" || e.ActorID != "42" ||
		e.Before != nil || !strings.Contains(string(e.After), `"deploy"`) {
		t.Errorf("token.create entry: %+v after %s", e, e.After)
	}
	if e := es[2]; !strings.Contains(string(e.Before), `"lab"`) || e.After != nil {
		t.Errorf("group.delete: before %s after %s, want the group before and nothing after", e.Before, e.After)
	}
	if e := es[4]; !strings.Contains(string(e.Before), `"lab"`) || strings.Contains(string(e.Before), desc) ||
		!strings.Contains(string(e.After), desc) {
		t.Errorf("group.update: before %s after %s", e.Before, e.After)
	}
	if e := es[3]; e.Before != nil || !strings.Contains(string(e.After), `"dev-1"`) {
		t.Errorf("group.add_device: before %s after %s", e.Before, e.After)
	}
	if e := es[5]; e.ActorKind != lodestone.ActorUser || e.Actor != "ann" || e.Before != nil || e.After == nil {
		t.Errorf("group.create: %+v", e)
	}
	if v := mustVerify(t, a); !v.OK || v.Checked != int64(len(wants)) {
		t.Fatalf("verify: %+v", v)
	}

	// A declared action names the first write's entry and silences the rest of the same action.
	dctx := lodestone.WithAudit(ctx, "group.rename")
	g2 := &lodestone.Group{Name: "two", CreatedAt: at(5)}
	if err := s.CreateGroup(dctx, g2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(dctx, g2.ID); err != nil {
		t.Fatal(err)
	}
	es = allAudit(t, a)
	if len(es) != len(wants)+1 || es[0].Action != "group.rename" || es[0].Target != fmt.Sprint(g2.ID) {
		t.Fatalf("declared action: newest %+v of %d", es[0], len(es))
	}
}

// testAuditRollsBackWithChange checks that a change that fails leaves no entry and the head where it was.
func testAuditRollsBackWithChange(t *testing.T, s lodestone.Store) {
	a := auditStore(t, s)
	ctx := operator("ann")
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "lab", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	before, err := a.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "lab", CreatedAt: at(1)}); lodestone.ErrorCode(err) !=
		lodestone.ECONFLICT {
		t.Fatalf("duplicate group: %v, want conflict", err)
	}
	if err := s.DeleteGroup(ctx, 9999); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("delete of a missing group: %v, want not found", err)
	}
	if _, err := s.UpdateDevice(ctx, "nobody", lodestone.DeviceUpdate{}); lodestone.ErrorCode(err) !=
		lodestone.ENOTFOUND {
		t.Fatalf("update of a missing device: %v, want not found", err)
	}
	after, err := a.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after != before || len(allAudit(t, a)) != 1 {
		t.Fatalf("failed changes moved the head from %+v to %+v", before, after)
	}
}

// testAuditConcurrentAppends appends from many goroutines (connections, on PostgreSQL) at once: the chain must
// not fork.
func testAuditConcurrentAppends(t *testing.T, s lodestone.Store) {
	a := auditStore(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := operator(fmt.Sprint("op", w))
			for i := range 6 {
				var err error
				if i%2 == 0 {
					err = s.CreateGroup(ctx, &lodestone.Group{Name: fmt.Sprint("g", w, "-", i), CreatedAt: at(i)})
				} else {
					err = a.AppendAudit(ctx, &lodestone.AuditEntry{ActorKind: lodestone.ActorUser, Actor: "x",
						Action: "backup.download"})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v := mustVerify(t, a); !v.OK || v.Checked != 48 || v.LastID != 48 {
		t.Fatalf("verify after concurrent appends: %+v", v)
	}
}

// testAuditPrune checks that pruning keeps the chain verifiable and records itself.
func testAuditPrune(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	a := auditStore(t, s)
	for i := range 5 {
		if err := a.AppendAudit(ctx, &lodestone.AuditEntry{Time: at(i * 60), ActorKind: lodestone.ActorUser,
			Actor: "ann", Action: "group.create"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.PruneAudit(ctx, at(-60)); err != nil || n != 0 {
		t.Fatalf("prune of nothing: %d, %v", n, err)
	}
	if len(allAudit(t, a)) != 5 {
		t.Fatal("a prune that deleted nothing left an entry")
	}
	n, err := a.PruneAudit(ctx, at(150)) // entries at 0, 60 and 120 s go
	if err != nil || n != 3 {
		t.Fatalf("prune: %d, %v; want 3", n, err)
	}
	es := allAudit(t, a)
	if len(es) != 3 || es[0].Action != lodestone.ActionAuditPrune || es[0].ActorKind != lodestone.ActorSystem {
		t.Fatalf("after the prune: %+v", es)
	}
	if v := mustVerify(t, a); !v.OK || v.FirstID != 4 || v.LastID != 6 {
		t.Fatalf("verify after a prune: %+v", v)
	}
	// Pruning everything leaves the prune entry, which links to what it pruned.
	if _, err := a.PruneAudit(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	es = allAudit(t, a)
	if len(es) != 1 || es[0].ID != 7 {
		t.Fatalf("after pruning everything: %+v", es)
	}
	if v := mustVerify(t, a); !v.OK || v.FirstID != 7 {
		t.Fatalf("verify after pruning everything: %+v", v)
	}
}

// AuditTamper checks that verification names the entry an edit, a deletion or a deleted newest entry broke. exec
// runs SQL on the store's database behind its back, as an attacker with database access would.
func AuditTamper(t *testing.T, s lodestone.Store, exec func(query string) error) {
	ctx := context.Background()
	a := auditStore(t, s)
	for i := range 6 {
		if err := a.AppendAudit(ctx, &lodestone.AuditEntry{Time: at(i), ActorKind: lodestone.ActorUser,
			Actor: "ann", Action: "group.create", Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if v := mustVerify(t, a); !v.OK {
		t.Fatalf("untouched log: %+v", v)
	}
	steps := []struct {
		sql   string
		bad   int64
		undo  string
		whats string
	}{
		{`UPDATE audit_log SET actor = 'mallory' WHERE id = 3`, 3, `UPDATE audit_log SET actor = 'ann' WHERE id = 3`,
			"edited"},
		{`UPDATE audit_log SET after_json = '{"x":1}' WHERE id = 2`, 2,
			`UPDATE audit_log SET after_json = '' WHERE id = 2`, "edited"},
		{`DELETE FROM audit_log WHERE id = 6`, 5, "", "chain head"}, // the newest: the head tells
		{`DELETE FROM audit_log WHERE id = 4`, 5, "", "missing"},
		{`DELETE FROM audit_log WHERE id = 1`, 2, "", "before it are missing"}, // the oldest, no prune entry
	}
	for _, st := range steps {
		if err := exec(st.sql); err != nil {
			t.Fatal(err)
		}
		v := mustVerify(t, a)
		if v.OK || v.BadID != st.bad || !strings.Contains(v.Problem, st.whats) {
			t.Fatalf("after %s: %+v, want entry %d named (%s)", st.sql, v, st.bad, st.whats)
		}
		if st.undo != "" {
			if err := exec(st.undo); err != nil {
				t.Fatal(err)
			}
			if v := mustVerify(t, a); !v.OK {
				t.Fatalf("after undoing %s: %+v", st.sql, v)
			}
		}
	}
}

// AuditFailureRollsBack checks the other half of "together": a change whose entry cannot be written does not
// happen. exec plants a row where the next entry must go, so the append fails inside the change's transaction.
func AuditFailureRollsBack(t *testing.T, s lodestone.Store, exec func(query string) error) {
	ctx := operator("ann")
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "first", CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	if err := exec(`INSERT INTO audit_log (id, time, actor_kind, actor, actor_id, action, target_kind, target,
		before_json, after_json, client_addr, request_id, via, prev_hash, hash)
		VALUES (2, 0, 'user', 'x', '', 'planted', '', '', '', '', '', '', '', '', '')`); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "second", CreatedAt: at(1)}); err == nil {
		t.Fatal("a group was created although its audit entry could not be written")
	}
	gs, err := s.FindGroups(context.Background())
	if err != nil || len(gs) != 1 || gs[0].Name != "first" {
		t.Fatalf("groups after the failed append: %+v %v", gs, err)
	}
	if err := exec(`DELETE FROM audit_log WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, &lodestone.Group{Name: "second", CreatedAt: at(1)}); err != nil {
		t.Fatal(err)
	}
	if v := mustVerify(t, auditStore(t, s)); !v.OK || v.Checked != 2 {
		t.Fatalf("verify: %+v", v)
	}
}
