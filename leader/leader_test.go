package leader_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone/leader"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

var quiet = slog.New(slog.DiscardHandler)

// contender is one replica in an election, with a job that counts its runs and a job that stays running until
// its context ends, so the test can see where jobs run and that they stop.
type contender struct {
	t       *testing.T
	el      *leader.PG
	cancel  context.CancelFunc
	done    chan struct{}
	runs    atomic.Int64
	running atomic.Bool
}

func start(t *testing.T, url, name string) *contender {
	t.Helper()
	el, err := leader.NewPGURL(url, name, leader.Config{Retry: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &contender{t: t, el: el, cancel: cancel, done: make(chan struct{})}
	count := leader.Job{Name: "count", Every: 10 * time.Millisecond, Run: func(ctx context.Context) error {
		c.runs.Add(1)
		return nil
	}}
	hold := leader.Job{Name: "hold", Every: time.Hour, Run: func(ctx context.Context) error {
		c.running.Store(true)
		<-ctx.Done()
		c.running.Store(false)
		return nil
	}}
	go func() {
		defer close(c.done)
		el.Run(ctx, count, hold)
	}()
	t.Cleanup(c.stop)
	return c
}

// stop ends the contender's Run and waits for it, failing the test if Run does not return.
func (c *contender) stop() {
	c.t.Helper()
	c.cancel()
	stopped(c.t, c.done)
}

// stopped waits for done, failing the test if it is not closed within 30 seconds.
func stopped(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// theLeader returns the one contender that leads, or nil when none or several do.
func theLeader(cs []*contender) *contender {
	var l *contender
	for _, c := range cs {
		if c.el.IsLeader() {
			if l != nil {
				return nil
			}
			l = c
		}
	}
	return l
}

// lockHolder returns the server pid holding the election's lock.
func lockHolder(t *testing.T, conn *pgx.Conn, name string) uint32 {
	t.Helper()
	ctx := context.Background()
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	key := uint64(leader.Key(name, schema))
	var pid uint32
	err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND classid::bigint = $1 AND objid::bigint = $2`, int64(key>>32), int64(key&0xffffffff)).Scan(&pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return pid
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// checkOneLeads waits for a single leader and checks that jobs run there and nowhere else.
func checkOneLeads(t *testing.T, conn *pgx.Conn, cs []*contender) *contender {
	t.Helper()
	var l *contender
	waitFor(t, "one leader", func() bool { l = theLeader(cs); return l != nil })
	waitFor(t, "the leader's jobs", func() bool { return l.runs.Load() > 2 && l.running.Load() })
	if pid := lockHolder(t, conn, "jobs"); pid != l.el.PID() {
		t.Fatalf("lock held by pid %d, leader is %d", pid, l.el.PID())
	}
	// Several retry intervals later nothing has changed.
	time.Sleep(400 * time.Millisecond)
	if theLeader(cs) != l {
		t.Fatal("leadership changed or was shared without cause")
	}
	return l
}

func TestPGOneOfThreeLeads(t *testing.T) {
	url := pgtest.URL(t)
	conn := connect(t, url)
	cs := []*contender{start(t, url, "jobs"), start(t, url, "jobs"), start(t, url, "jobs")}
	l := checkOneLeads(t, conn, cs)
	for _, c := range cs {
		if c != l && (c.runs.Load() != 0 || c.running.Load()) {
			t.Fatalf("a follower ran jobs: %d runs", c.runs.Load())
		}
	}
}

func TestPGLeadershipMovesWhenConnectionDies(t *testing.T) {
	url := pgtest.URL(t)
	conn := connect(t, url)
	cs := []*contender{start(t, url, "jobs"), start(t, url, "jobs"), start(t, url, "jobs")}
	old := checkOneLeads(t, conn, cs)
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, old.el.PID()).Scan(&ok); err != nil ||
		!ok {
		t.Fatalf("terminate the leader's connection: %v %v", ok, err)
	}
	waitFor(t, "the old leader to stop its jobs", func() bool { return !old.el.IsLeader() && !old.running.Load() })
	waitFor(t, "a new leader", func() bool { l := theLeader(cs); return l != nil && l.running.Load() })
	// The old one reconnects and follows; leadership stays single.
	l := checkOneLeads(t, conn, cs)
	if l == old {
		t.Log("the old leader took the lock back first") // possible, and still one leader
	}
}

func TestPGLeadershipMovesWhenLeaderStops(t *testing.T) {
	url := pgtest.URL(t)
	conn := connect(t, url)
	cs := []*contender{start(t, url, "jobs"), start(t, url, "jobs")}
	old := checkOneLeads(t, conn, cs)
	old.stop()
	if old.el.IsLeader() || old.running.Load() {
		t.Fatal("a stopped elector still leads or runs jobs")
	}
	var rest []*contender
	for _, c := range cs {
		if c != old {
			rest = append(rest, c)
		}
	}
	if l := checkOneLeads(t, conn, rest); l.runs.Load() == 0 {
		t.Fatal("the new leader never ran its jobs")
	}
}

// The same election name in two schemas of one database is two elections.
func TestPGSchemasElectSeparately(t *testing.T) {
	a, b := start(t, pgtest.URL(t), "jobs"), start(t, pgtest.URL(t), "jobs")
	waitFor(t, "both to lead", func() bool { return a.el.IsLeader() && b.el.IsLeader() })
}

func TestSingleAlwaysLeads(t *testing.T) {
	s := leader.NewSingle(quiet)
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, leader.Job{Name: "n", Every: 5 * time.Millisecond, Run: func(context.Context) error {
			if runs.Add(1) == 2 {
				panic("boom") // a panicking job is logged and keeps its schedule
			}
			return fmt.Errorf("run %d", runs.Load())
		}})
	}()
	waitFor(t, "runs", func() bool { return s.IsLeader() && runs.Load() > 3 })
	cancel()
	stopped(t, done)
	if s.IsLeader() {
		t.Fatal("still leader after Run returned")
	}
}
