package event_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// migrated returns the URL of a fresh schema with every PostgreSQL migration applied.
func migrated(tb testing.TB) string {
	tb.Helper()
	url := pgtest.URL(tb)
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	p, err := schema.Provider(schema.Postgres, db)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return url
}

func openPG(tb testing.TB, url string, cfg event.PGConfig) *event.PGBus {
	tb.Helper()
	b, err := event.OpenPGURL(context.Background(), url, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func sqlConn(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestPGBusOrderAndResume(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{RingSize: 10})
	ctx := t.Context()
	live, err := b.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := b.Publish(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	all := recv(t, live, 100)
	inOrder(t, all, 0)
	if all[0].Time.IsZero() || all[0].Type != lodestone.EventHeartbeat {
		t.Fatalf("event %+v", all[0])
	}

	// From the ring (the newest 10), then from the table for anything older.
	var resumed []<-chan lodestone.Event
	for _, from := range []int{94, 4} {
		ch, err := b.Subscribe(ctx, all[from].ID)
		if err != nil {
			t.Fatal(err)
		}
		got := recv(t, ch, 99-from)
		inOrder(t, got, from+1)
		if got[0].ID != all[from+1].ID {
			t.Fatalf("resume after %d started at %d", all[from].ID, got[0].ID)
		}
		resumed = append(resumed, ch)
	}
	b.Publish(ctx, ev(1000))
	for _, ch := range resumed {
		if e := recv(t, ch, 1)[0]; e.DeviceID != "d1000" {
			t.Fatalf("after replay: %s", e.DeviceID)
		}
	}
	// An id never issued: live events only.
	ch, _ := b.Subscribe(ctx, all[99].ID+1_000_000)
	b.Publish(ctx, ev(2000))
	if e := recv(t, ch, 1)[0]; e.DeviceID != "d2000" {
		t.Fatalf("subscriber with a future id got %s first", e.DeviceID)
	}
}

// Two buses on one schema are two replicas: each delivers every event from both, with the same ids in the same
// order.
func TestPGBusTwoReplicas(t *testing.T) {
	url := migrated(t)
	a := openPG(t, url, event.PGConfig{})
	b := openPG(t, url, event.PGConfig{})
	ctx := t.Context()
	subA, _ := a.Subscribe(ctx, 0)
	subB, _ := b.Subscribe(ctx, 0)
	for i := range 200 {
		bus := a
		if i%3 == 0 {
			bus = b
		}
		bus.Publish(ctx, ev(i))
	}
	gotA, gotB := recv(t, subA, 200), recv(t, subB, 200)
	seen := map[string]bool{}
	for i := range gotA {
		if gotA[i].ID != gotB[i].ID || gotA[i].DeviceID != gotB[i].DeviceID {
			t.Fatalf("event %d: A has %d %s, B has %d %s", i, gotA[i].ID, gotA[i].DeviceID, gotB[i].ID,
				gotB[i].DeviceID)
		}
		if i > 0 && gotA[i].ID <= gotA[i-1].ID {
			t.Fatalf("ids not increasing at %d", i)
		}
		seen[gotA[i].DeviceID] = true
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct events, want 200", len(seen))
	}
	// Each replica's own publications come out in the order they were published.
	last := -1
	for _, e := range gotB {
		var n int
		fmt.Sscanf(e.DeviceID, "d%d", &n)
		if n%3 == 0 {
			if n < last {
				t.Fatalf("B's d%d after d%d", n, last)
			}
			last = n
		}
	}
}

// Killing the listener's connection loses nothing: on reconnect it reads every row it missed, including rows
// that were never announced.
func TestPGBusListenerReconnectCatchesUp(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{Backoff: 300 * time.Millisecond})
	ctx := t.Context()
	sub, _ := b.Subscribe(ctx, 0)
	b.Publish(ctx, ev(0))
	recv(t, sub, 1)

	c := sqlConn(t, url)
	var schema string
	c.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema)
	listener := func() (pid int) {
		c.QueryRow(ctx, `SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = $1`,
			event.ListenerName(schema)).Scan(&pid)
		return pid
	}
	old := listener()
	var killed bool
	if err := c.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener %d: %v %v", old, killed, err)
	}
	// Rows written without NOTIFY while the listener is away: only the catch-up can find them.
	for i := 1; i <= 5; i++ {
		if _, err := c.Exec(ctx, `INSERT INTO events (type, device_id, time, data) VALUES ($1, $2, now(), $3)`,
			lodestone.EventHeartbeat, ev(i).DeviceID, string(ev(i).Data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 6; i < 10; i++ {
		b.Publish(ctx, ev(i))
	}
	inOrder(t, recv(t, sub, 9), 1)
	if now := listener(); now == 0 || now == old {
		t.Fatalf("listener pid %d after killing %d", now, old)
	}
}

func TestPGBusTrim(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{})
	ctx := t.Context()
	sub, _ := b.Subscribe(ctx, 0)
	for i := range 10 {
		e := ev(i)
		if i < 4 {
			e.Time = time.Now().Add(-2 * time.Hour)
		}
		b.Publish(ctx, e)
	}
	recv(t, sub, 10)
	n, err := b.Trim(ctx, time.Hour, 0)
	if err != nil || n != 4 {
		t.Fatalf("trim by age = %d, %v; want 4", n, err)
	}
	if n, err = b.Trim(ctx, 0, 2); err != nil || n != 4 {
		t.Fatalf("trim to 2 = %d, %v; want 4", n, err)
	}
	var left []string
	rows, _ := sqlConn(t, url).Query(ctx, `SELECT device_id FROM events ORDER BY id`)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(left) != 2 || left[0] != "d8" || left[1] != "d9" {
		t.Fatalf("left %v, %v", left, err)
	}
}

// BenchmarkPGBusPublish measures events per second from Publish on one replica to a subscriber on another; one
// op is 1000 events.
func BenchmarkPGBusPublish(b *testing.B) {
	url := migrated(b)
	pub := openPG(b, url, event.PGConfig{})
	other := openPG(b, url, event.PGConfig{Buffer: 4096})
	ctx := context.Background()
	sub, _ := other.Subscribe(ctx, 0)
	e := ev(1)
	const per = 1000
	n := 0
	for b.Loop() {
		for range per {
			if err := pub.Publish(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		for range per {
			select {
			case <-sub:
			case <-time.After(30 * time.Second):
				b.Fatal("events did not arrive")
			}
		}
		n += per
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
