package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

// BenchAuditedWrite measures an operator's group rename with and without its audit entry (images read, chain
// appended, in the same transaction), and verifying a chain of n entries.
func BenchAuditedWrite(b *testing.B, s lodestone.Store, n int) {
	g := &lodestone.Group{Name: "bench", CreatedAt: at(0)}
	if err := s.CreateGroup(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"unaudited", context.Background()}, {"audited", operator("ann")}} {
		b.Run(c.name, func(b *testing.B) {
			for i := range b.N {
				name := fmt.Sprint("bench-", c.name, i)
				if _, err := s.UpdateGroup(c.ctx, g.ID, lodestone.GroupUpdate{Name: &name}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	a := auditStore(b, s)
	for i := range n {
		if err := a.AppendAudit(context.Background(), &lodestone.AuditEntry{ActorKind: lodestone.ActorUser,
			Actor: "ann", Action: "group.update", Target: fmt.Sprint(i), After: []byte(`{"name":"x"}`)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run(fmt.Sprint("verify-", n), func(b *testing.B) {
		for range b.N {
			if v := mustVerify(b, a); !v.OK {
				b.Fatalf("verify: %+v", v)
			}
		}
	})
}
