package httpapi_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Two servers sharing one PostgreSQL event bus are two replicas: a chunk ingested through A is a live event on
// B's stream, and a client moving from A to B resumes with the id A gave it.
func TestEventStreamAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := schema.Provider(schema.Postgres, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bus := func() *event.PGBus {
		b, err := event.OpenPGURL(context.Background(), url, event.PGConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	a, b := newEnv(t, opts{bus: bus()}), newEnv(t, opts{bus: bus()})
	onA, onB := a.stream(""), b.stream("")
	a.post(nil, v("V1", "V4", "V5", "V2"))
	fromB := onB.events(5)
	checkV13(t, fromB)
	fromA := onA.events(5)
	for i := range fromA {
		if fromA[i].id != fromB[i].id {
			t.Fatalf("event %d: id %d on A, %d on B", i, fromA[i].id, fromB[i].id)
		}
	}
	onA.close()
	a.post(nil, v("V1", "V4", "V5", "V2"))
	moved := b.stream("", "Last-Event-ID", itoa64(fromA[4].id))
	checkV13(t, moved.events(5))
}
