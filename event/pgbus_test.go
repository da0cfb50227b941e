package event_test

import (
	"context"
	"database/sql"
	"encoding/json"
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
	ch := subscribe(t, b, ctx, all[99].ID+1_000_000)
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
	subA := subscribe(t, a, ctx, 0)
	subB := subscribe(t, b, ctx, 0)
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
	sub := subscribe(t, b, ctx, 0)
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
	insertRow(t, c, time.Now(), 1, 2, 3)
	insertRow(t, c, time.Now(), 4, 5)
	for i := 6; i < 10; i++ {
		b.Publish(ctx, ev(i))
	}
	inOrder(t, recv(t, sub, 9), 1)
	if now := listener(); now == 0 || now == old {
		t.Fatalf("listener pid %d after killing %d", now, old)
	}
}

// insertRow writes events ev(i) for each i as one row, the way the bus stores a batch, without NOTIFY.
func insertRow(t *testing.T, c *pgx.Conn, at time.Time, is ...int) {
	t.Helper()
	type wire struct {
		Type     string          `json:"type"`
		DeviceID string          `json:"device_id"`
		Time     time.Time       `json:"time"`
		Data     json.RawMessage `json:"data"`
	}
	var batch []wire
	for _, i := range is {
		e := ev(i)
		batch = append(batch, wire{e.Type, e.DeviceID, at, e.Data})
	}
	data, _ := json.Marshal(batch)
	if _, err := c.Exec(t.Context(), `INSERT INTO events (time, count, data) VALUES ($1, $2, $3)`, at, len(is),
		string(data)); err != nil {
		t.Fatal(err)
	}
}

// A batch is one row; it arrives on another replica complete and in order, and a subscriber can resume from an
// event in the middle of a row.
func TestPGBusBatchRow(t *testing.T) {
	url := migrated(t)
	pub := openPG(t, url, event.PGConfig{MaxBatch: 10000, RingSize: 10, Buffer: 4096}) // capped at event.MaxBatch
	other := openPG(t, url, event.PGConfig{Buffer: 4096, RingSize: 10})
	ctx := t.Context()
	subPub := subscribe(t, pub, ctx, 0)
	subOther := subscribe(t, other, ctx, 0)

	// Holding the table lock stalls the writer, so the events queue up and go into one row when it is released.
	c := sqlConn(t, url)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE events IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if err := pub.Publish(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	tx.Rollback(ctx)

	all := recv(t, subOther, n)
	inOrder(t, all, 0)
	for i, e := range recv(t, subPub, n) {
		if e.ID != all[i].ID {
			t.Fatalf("event %d: id %d on the publisher, %d on the other replica", i, e.ID, all[i].ID)
		}
	}
	var rows int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&rows); err != nil || rows > 2 {
		t.Fatalf("%d events in %d rows (%v), want at most 2", n, rows, err)
	}
	if last := all[n-1].ID; other.LastID() != last || pub.LastID() != last {
		t.Fatalf("LastID %d and %d, want %d", pub.LastID(), other.LastID(), last)
	}

	// From the table: the ring holds only the newest 10.
	for _, from := range []int{1500, 0} {
		if all[from].ID>>12 != all[from+1].ID>>12 && from != 0 {
			t.Fatalf("events %d and %d are in different rows", from, from+1)
		}
		ch, err := other.Subscribe(ctx, all[from].ID)
		if err != nil {
			t.Fatal(err)
		}
		got := recv(t, ch, n-from-1)
		inOrder(t, got, from+1)
		if got[0].ID != all[from+1].ID {
			t.Fatalf("resume after %d started at %d, want %d", all[from].ID, got[0].ID, all[from+1].ID)
		}
	}
}

// More rows than one page: the listener and a resuming subscriber read them all, page after page.
func TestPGBusManyRows(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{RingSize: 10, Buffer: 4096})
	ctx := t.Context()
	sub := subscribe(t, b, ctx, 0)
	c := sqlConn(t, url)
	const rows = 300
	if _, err := c.Exec(ctx, `INSERT INTO events (time, count, data)
		SELECT now(), 1, format('[{"type":"heartbeat","device_id":"d%s","time":"2026-01-02T03:04:05Z",'
			'"data":{"device_id":"d%s","uptime_ticks":%s}}]', i, i, i)
		FROM generate_series(0, $1 - 1) AS i ORDER BY i`, rows); err != nil {
		t.Fatal(err)
	}
	b.Publish(ctx, ev(rows)) // its NOTIFY makes the listener read the rows before it
	all := recv(t, sub, rows+1)
	inOrder(t, all, 0)
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !all[0].Time.Equal(want) {
		t.Fatalf("time %v, want %v", all[0].Time, want)
	}
	ch := subscribe(t, b, ctx, all[3].ID)
	inOrder(t, recv(t, ch, rows-3), 4)
}

// Trim removes whole rows: by the age of their newest event, and those not needed to keep the newest events.
func TestPGBusTrim(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{})
	ctx := t.Context()
	c := sqlConn(t, url)
	insertRow(t, c, time.Now().Add(-2*time.Hour), 0, 1, 2, 3)
	insertRow(t, c, time.Now(), 4, 5, 6)
	insertRow(t, c, time.Now(), 7)
	insertRow(t, c, time.Now(), 8, 9)
	for _, step := range []struct {
		maxAge  time.Duration
		keep    int
		deleted int64
		left    string
	}{
		{time.Hour, 0, 4, "d4 d5 d6 d7 d8 d9"},
		{0, 3, 3, "d7 d8 d9"}, // the 3 newest are in the last two rows
		{0, 2, 1, "d8 d9"},
		{0, 1, 0, "d8 d9"}, // the newest row stays whole
		{time.Hour, 100, 0, "d8 d9"},
	} {
		n, err := b.Trim(ctx, step.maxAge, step.keep)
		if err != nil || n != step.deleted {
			t.Fatalf("Trim(%v, %d) = %d, %v; want %d", step.maxAge, step.keep, n, err, step.deleted)
		}
		var left string
		err = c.QueryRow(ctx, `SELECT coalesce(string_agg(e->>'device_id', ' ' ORDER BY id, n), '')
			FROM events, json_array_elements(data::json) WITH ORDINALITY AS a(e, n)`).Scan(&left)
		if err != nil || left != step.left {
			t.Fatalf("after Trim(%v, %d): %q, %v; want %q", step.maxAge, step.keep, left, err, step.left)
		}
	}
}

// BenchmarkPGBusPublish measures events per second from Publish on one replica to a subscriber on another; one
// op is 1000 events.
func BenchmarkPGBusPublish(b *testing.B) {
	url := migrated(b)
	pub := openPG(b, url, event.PGConfig{})
	other := openPG(b, url, event.PGConfig{Buffer: 4096})
	ctx := context.Background()
	sub := subscribe(b, other, ctx, 0)
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
	var size int64 // what the table costs the database per event, indexes included
	sqlConn(b, url).QueryRow(ctx, `SELECT pg_total_relation_size('events')`).Scan(&size)
	b.ReportMetric(float64(size)/float64(n), "table-B/event")
}

// A replica without subscribers steps past events without reading them; a subscriber arriving later still gets
// what it resumes from (out of the table) and, resuming from nothing, only what comes next.
func TestPGBusIdleReplicaSkipsAndReplays(t *testing.T) {
	url := migrated(t)
	pub := openPG(t, url, event.PGConfig{})
	idle := openPG(t, url, event.PGConfig{RingSize: 16})
	ctx := t.Context()
	mine := subscribe(t, pub, ctx, 0)
	for i := range 50 {
		pub.Publish(ctx, ev(i))
	}
	got := recv(t, mine, 50)
	deadline := time.Now().Add(10 * time.Second)
	for idle.LastID() != got[49].ID {
		if time.Now().After(deadline) {
			t.Fatalf("idle replica at %d, want %d", idle.LastID(), got[49].ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resumed := subscribe(t, idle, ctx, got[19].ID)
	fresh := subscribe(t, idle, ctx, 0)
	pub.Publish(ctx, ev(50))
	rest := recv(t, resumed, 31)
	for i := range 30 {
		if rest[i].ID != got[20+i].ID {
			t.Fatalf("resumed event %d: id %d, want %d", i, rest[i].ID, got[20+i].ID)
		}
	}
	if rest[30].DeviceID != "d50" {
		t.Fatalf("resumed stream ends with %s, want d50", rest[30].DeviceID)
	}
	if e := recv(t, fresh, 1)[0]; e.DeviceID != "d50" {
		t.Fatalf("a fresh subscriber got %s first, want only new events (d50)", e.DeviceID)
	}
}

// storedEvents counts the events in the table.
func storedEvents(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), `SELECT coalesce(sum(count), 0) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitUnwanted waits until bus has declined to store n events in all.
func waitUnwanted(t *testing.T, bus *event.PGBus, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for bus.Unwanted() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d events declined, want %d", bus.Unwanted(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Events are stored only while some replica has a subscriber, or had one within the grace period; a subscription
// on one replica is in force for every replica's writer as soon as Subscribe returns.
func TestPGBusStoresOnlyWhileWanted(t *testing.T) {
	url := migrated(t)
	const grace = 1500 * time.Millisecond
	a := openPG(t, url, event.PGConfig{Grace: grace})
	b := openPG(t, url, event.PGConfig{Grace: grace})
	c := sqlConn(t, url)
	ctx := t.Context()

	// Nobody has ever subscribed: nothing is written.
	for i := range 10 {
		a.Publish(ctx, ev(i))
	}
	waitUnwanted(t, a, 10)
	if n := storedEvents(t, c); n != 0 {
		t.Fatalf("%d events stored while nobody subscribed", n)
	}

	// A subscription on B: A's very next event reaches it, with no wait in between.
	sctx, cancel := context.WithCancel(ctx)
	sub, err := b.Subscribe(sctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	a.Publish(ctx, ev(100))
	got := recv(t, sub, 1)[0]
	if got.DeviceID != "d100" {
		t.Fatalf("subscriber got %s, want d100", got.DeviceID)
	}

	// The subscriber leaves; within the grace period events are still stored, and a client resuming from its
	// last id gets them.
	cancel()
	waitFor(t, 10*time.Second, "the subscriber on B was not removed", func() bool { return b.Subscribers() == 0 })
	a.Publish(ctx, ev(101))
	a.Publish(ctx, ev(102))
	rctx, rcancel := context.WithCancel(ctx)
	resumed, err := a.Subscribe(rctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rest := recv(t, resumed, 2); rest[0].DeviceID != "d101" || rest[1].DeviceID != "d102" {
		t.Fatalf("resumed with %s, %s; want d101, d102", rest[0].DeviceID, rest[1].DeviceID)
	}

	// A live subscription keeps its replica's row in force past the grace period.
	c2 := openPG(t, url, event.PGConfig{Grace: grace}) // a third replica
	time.Sleep(grace + 500*time.Millisecond)
	before := storedEvents(t, c)
	c2.Publish(ctx, ev(103))
	if e := recv(t, resumed, 1)[0]; e.DeviceID != "d103" {
		t.Fatalf("live subscriber got %s, want d103", e.DeviceID)
	}
	if n := storedEvents(t, c); n != before+1 {
		t.Fatalf("%d events stored, want %d", n, before+1)
	}

	// Once every subscriber is gone and the grace period has passed, nothing is stored.
	rcancel()
	waitFor(t, 10*time.Second, "the subscriber on A was not removed", func() bool { return a.Subscribers() == 0 })
	time.Sleep(grace + time.Second)
	declined := c2.Unwanted()
	c2.Publish(ctx, ev(104))
	waitUnwanted(t, c2, declined+1)
	if n := storedEvents(t, c); n != before+1 {
		t.Fatalf("%d events stored after the grace period, want %d", n, before+1)
	}
}

// Replicas counts the buses on one schema, not those of other schemas in the same database.
func TestPGBusReplicas(t *testing.T) {
	url := migrated(t)
	a := openPG(t, url, event.PGConfig{})
	openPG(t, url, event.PGConfig{})
	openPG(t, migrated(t), event.PGConfig{}) // another schema
	if n, err := a.Replicas(t.Context()); err != nil || n != 2 {
		t.Fatalf("Replicas = %d, %v; want 2", n, err)
	}
	b := openPG(t, url, event.PGConfig{})
	if n, _ := a.Replicas(t.Context()); n != 3 {
		t.Fatalf("Replicas = %d with a third bus; want 3", n)
	}
	b.Close()
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := a.Replicas(t.Context()); n != 2; n, _ = a.Replicas(t.Context()) {
		if time.Now().After(deadline) {
			t.Fatalf("Replicas = %d after a bus closed; want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A subscription that cannot be registered is refused with a retryable error, never accepted half-way (its events
// might not be stored).
func TestPGBusSubscribeUnavailable(t *testing.T) {
	url := migrated(t)
	b := openPG(t, url, event.PGConfig{})
	if _, err := sqlConn(t, url).Exec(context.Background(), `DROP TABLE event_listeners`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(t.Context(), 0); lodestone.ErrorCode(err) != lodestone.EUNAVAILABLE {
		t.Fatalf("Subscribe without its table: %v, want an EUNAVAILABLE error", err)
	}
}

// Shutdown keeps to its deadline when PostgreSQL stops answering: the batch in flight and the queued ones are
// dropped and counted instead of being retried for minutes (five tries of up to 30 s each per batch).
func TestPGBusShutdownKeepsDeadlineWhenDatabaseHangs(t *testing.T) {
	px := pgtest.StartProxy(t, migrated(t))
	// Not openPG: its cleanup would Close again, which waits for the pool's close without a deadline.
	b, err := event.OpenPGURL(t.Context(), px.URL(), event.PGConfig{MaxBatch: 10})
	if err != nil {
		t.Fatal(err)
	}
	// A subscriber makes the events wanted, so the writer tries to store them.
	if _, err := b.Subscribe(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	px.Stall()
	const n = 50
	for i := range n {
		if err := b.Publish(t.Context(), lodestone.Event{Type: "t", DeviceID: fmt.Sprint(i), Time: time.Now(),
			Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Shutdown(ctx)
	}()
	select {
	case <-done:
	case <-time.After(deadline + 5*time.Second):
		t.Fatalf("Shutdown still running %v after its %v deadline", time.Since(start)-deadline, deadline)
	}
	if took := time.Since(start); took > deadline+2*time.Second {
		t.Fatalf("Shutdown took %v with a %v deadline", took, deadline)
	}
	if d := b.Dropped(); d != n {
		t.Fatalf("Dropped() = %d, want every one of the %d unwritten events", d, n)
	}
}
