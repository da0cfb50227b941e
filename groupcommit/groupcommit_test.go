package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitFor fails the test unless cond holds within timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// store records the groups committed; while hold is open, each commit waits until hold is closed.
type store struct {
	hold      chan struct{}
	fail      string
	mu        sync.Mutex
	groups    [][]string
	in, peak  int
	committed []string
}

func newStore() *store { return &store{hold: make(chan struct{})} }

func (s *store) commit(ctx context.Context, items []string) error {
	s.mu.Lock()
	s.groups = append(s.groups, slices.Clone(items))
	s.in++
	s.peak = max(s.peak, s.in)
	s.mu.Unlock()
	select {
	case <-s.hold:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.in--
	if s.fail != "" && slices.Contains(items, s.fail) {
		return errors.New("simulated failure")
	}
	s.committed = append(s.committed, items...)
	return nil
}

func (s *store) state() (groups, in, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.groups), s.in, s.peak
}

func newWriter(t *testing.T, s *store, committers, queue int) *Writer[string] {
	w := New(Config[string]{Name: "test", Committers: committers, QueueSize: queue, Commit: s.commit,
		Full: errors.New("full"), Closed: errors.New("closed"), Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		select {
		case <-s.hold:
		default:
			close(s.hold)
		}
		w.Close()
	})
	return w
}

// write starts a Write and returns the channel its result arrives on.
func write(w *Writer[string], item string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- w.Write(context.Background(), []string{item}) }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Write did not return within 10s")
		return nil
	}
}

// Requests that queue behind a transaction in flight share the next one, and each is answered after it.
func TestGroupCommit(t *testing.T) {
	s := newStore()
	w := newWriter(t, s, 1, 0)
	first := write(w, "first")
	waitFor(t, 5*time.Second, "the first commit did not start", func() bool { g, _, _ := s.state(); return g == 1 })
	var rest []<-chan error
	for i := range 20 {
		rest = append(rest, write(w, fmt.Sprint("r", i)))
	}
	waitFor(t, 5*time.Second, "20 requests did not queue", func() bool { return w.Len() == 20 })
	close(s.hold)
	for _, ch := range append(rest, first) {
		if err := result(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if g, _, _ := s.state(); g != 2 {
		t.Fatalf("21 requests took %d transactions, want 2 (%v)", g, s.groups)
	}
	if tx, recs := w.Stats(); tx != 2 || recs != 21 {
		t.Fatalf("stats: %d transactions, %d records; want 2, 21", tx, recs)
	}
}

// A failed group is retried request by request, so only the bad one fails.
func TestFailedGroupIsolatesTheRequest(t *testing.T) {
	s := newStore()
	s.fail = "poison"
	w := newWriter(t, s, 1, 0)
	first := write(w, "first")
	waitFor(t, 5*time.Second, "the first commit did not start", func() bool { g, _, _ := s.state(); return g == 1 })
	chs := map[string]<-chan error{}
	for _, it := range []string{"a", "poison", "b"} {
		chs[it] = write(w, it)
	}
	waitFor(t, 5*time.Second, "3 requests did not queue", func() bool { return w.Len() == 3 })
	close(s.hold)
	if err := result(t, first); err != nil {
		t.Fatal(err)
	}
	for it, ch := range chs {
		err := result(t, ch)
		if (err != nil) != (it == "poison") {
			t.Errorf("%s: %v", it, err)
		}
	}
	if !slices.Contains(s.committed, "a") || !slices.Contains(s.committed, "b") ||
		slices.Contains(s.committed, "poison") {
		t.Fatalf("committed %v", s.committed)
	}
}

// A full queue fails at once; Close commits what is queued; writes after Close fail.
func TestOverloadAndClose(t *testing.T) {
	s := newStore()
	w := newWriter(t, s, 1, 1)
	first := write(w, "first")
	waitFor(t, 5*time.Second, "the first commit did not start", func() bool { g, _, _ := s.state(); return g == 1 })
	second := write(w, "second")
	waitFor(t, 5*time.Second, "the second request did not queue", func() bool { return w.Len() == 1 })
	if err := w.Write(context.Background(), []string{"third"}); err == nil || err.Error() != "full" {
		t.Fatalf("full queue: %v, want the Full error", err)
	}
	closed := make(chan struct{})
	go func() {
		w.Close()
		close(closed)
	}()
	close(s.hold)
	for _, ch := range []<-chan error{first, second} {
		if err := result(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if !slices.Equal(s.committed, []string{"first", "second"}) {
		t.Fatalf("committed %v", s.committed)
	}
	if err := w.Write(context.Background(), []string{"late"}); err == nil || err.Error() != "closed" {
		t.Fatalf("write after Close: %v, want the Closed error", err)
	}
}

// SetCommitters bounds the transactions in flight while the writer runs, and raises the bound back, clamped to
// the committers started.
func TestSetCommitters(t *testing.T) {
	s := newStore()
	w := newWriter(t, s, 2, 0)
	w.SetCommitters(1)
	a := write(w, "a")
	waitFor(t, 5*time.Second, "a did not start", func() bool { _, in, _ := s.state(); return in == 1 })
	b := write(w, "b")
	waitFor(t, 5*time.Second, "the second committer did not wait for its turn", func() bool { return w.Waiting() == 1 })
	if _, in, _ := s.state(); in != 1 {
		t.Fatalf("%d transactions in flight with SetCommitters(1)", in)
	}
	w.SetCommitters(5) // clamped to the 2 started
	waitFor(t, 5*time.Second, "b did not start once the bound was raised", func() bool { _, in, _ := s.state(); return in == 2 })
	c := write(w, "c")
	waitFor(t, 5*time.Second, "c did not queue", func() bool { return w.Len() == 1 })
	close(s.hold)
	for _, ch := range []<-chan error{a, b, c} {
		if err := result(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, peak := s.state(); peak != 2 {
		t.Fatalf("%d transactions in flight at most, want 2", peak)
	}
}

// A caller whose context ends stops waiting; its request is still committed.
func TestWriteContext(t *testing.T) {
	s := newStore()
	w := newWriter(t, s, 1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- w.Write(ctx, []string{"x"}) }()
	waitFor(t, 5*time.Second, "the commit did not start", func() bool { g, _, _ := s.state(); return g == 1 })
	cancel()
	if err := result(t, ch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel: %v", err)
	}
	close(s.hold)
	w.Close()
	if !slices.Equal(s.committed, []string{"x"}) {
		t.Fatalf("committed %v", s.committed)
	}
}
