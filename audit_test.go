package lodestone_test

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func TestAuditFor(t *testing.T) {
	bg := context.Background()
	if lodestone.AuditFor(bg, "group.create") != nil {
		t.Fatal("no principal: an entry")
	}
	dev := lodestone.NewContextWithPrincipal(bg, &lodestone.Principal{Name: "d1", DeviceID: "d1"})
	if lodestone.AuditFor(dev, "group.create") != nil {
		t.Fatal("a device: an entry")
	}
	tok := lodestone.NewContextWithPrincipal(bg, &lodestone.Principal{Name: "token:ci", Kind: lodestone.ActorToken,
		TokenID: 7})
	tok = lodestone.NewContextWithAuditRequest(tok, lodestone.AuditRequest{ClientAddr: "10.1.1.1", RequestID: "r1",
		Via: lodestone.ViaMCP})
	e := lodestone.AuditFor(tok, "group.create")
	if e == nil || e.ActorKind != lodestone.ActorToken || e.Actor != "token:ci" || e.ActorID != "7" ||
		e.Action != "group.create" || e.ClientAddr != "10.1.1.1" || e.RequestID != "r1" || e.Via != lodestone.ViaMCP {
		t.Fatalf("token entry %+v", e)
	}
	// A declared action names the first write's entry; later writes of it record nothing; the outer one stands.
	decl := lodestone.WithAudit(lodestone.WithAudit(tok, "campaign.resume"), "campaign.activate")
	if e := lodestone.AuditFor(decl, "campaign.status"); e == nil || e.Action != "campaign.resume" {
		t.Fatalf("declared: %+v", e)
	}
	if e := lodestone.AuditFor(decl, "campaign.offer_wave"); e != nil {
		t.Fatalf("second write of a declared action: %+v", e)
	}
	sys := lodestone.SystemContext(bg, "retention")
	if e := lodestone.AuditFor(sys, "retention.run"); e == nil || e.ActorKind != lodestone.ActorSystem ||
		e.Actor != "retention" {
		t.Fatalf("system: %+v", e)
	}
}

func TestAuditHashCoversEveryField(t *testing.T) {
	e := lodestone.AuditEntry{ID: 3, Time: time.UnixMilli(1_700_000_000_123), ActorKind: "user", Actor: "ann",
		ActorID: "", Action: "group.create", TargetKind: "group", Target: "1", Before: []byte(`{"a":1}`),
		After: []byte(`{"a":2}`), ClientAddr: "10.0.0.1", RequestID: "r", Via: "api", PrevHash: "ab"}
	h := e.ComputeHash()
	for name, edit := range map[string]func(*lodestone.AuditEntry){
		"id":     func(e *lodestone.AuditEntry) { e.ID++ },
		"time":   func(e *lodestone.AuditEntry) { e.Time = e.Time.Add(time.Millisecond) },
		"actor":  func(e *lodestone.AuditEntry) { e.Actor = "bob" },
		"kind":   func(e *lodestone.AuditEntry) { e.ActorKind = "token" },
		"actid":  func(e *lodestone.AuditEntry) { e.ActorID = "1" },
		"action": func(e *lodestone.AuditEntry) { e.Action = "group.delete" },
		"tkind":  func(e *lodestone.AuditEntry) { e.TargetKind = "device" },
		"target": func(e *lodestone.AuditEntry) { e.Target = "2" },
		"before": func(e *lodestone.AuditEntry) { e.Before = []byte(`{"a":3}`) },
		"after":  func(e *lodestone.AuditEntry) { e.After = nil },
		"client": func(e *lodestone.AuditEntry) { e.ClientAddr = "10.0.0.2" },
		"req":    func(e *lodestone.AuditEntry) { e.RequestID = "s" },
		"via":    func(e *lodestone.AuditEntry) { e.Via = "mcp" },
		"prev":   func(e *lodestone.AuditEntry) { e.PrevHash = "cd" },
	} {
		c := e
		edit(&c)
		if c.ComputeHash() == h {
			t.Errorf("the hash does not cover %s", name)
		}
	}
	// Sub-millisecond time is not stored, so it is not hashed either.
	c := e
	c.Time = c.Time.Add(300 * time.Microsecond)
	if c.ComputeHash() != h {
		t.Error("the hash covers time below the stored millisecond")
	}
}
