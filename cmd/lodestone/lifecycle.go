package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// A crew owns goroutines that stop together: each runs with the crew's context, and stop cancels it. A goroutine
// that fails before its crew is stopped reports its error to the run (failed), which then shuts down; failed
// keeps only the first error and never blocks, so a second failure cannot strand its goroutine.
type crew struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan<- error
}

func newCrew(name string, failed chan<- error) *crew {
	ctx, cancel := context.WithCancel(context.Background())
	return &crew{name: name, ctx: ctx, cancel: cancel, failed: failed}
}

// Go runs fn in the crew. Its error counts only if the crew is still running when fn returns.
func (c *crew) Go(fn func(ctx context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := fn(c.ctx); err != nil && c.ctx.Err() == nil {
			select {
			case c.failed <- err:
			default: // the run already stops for an earlier error
			}
		}
	}()
}

// stop cancels the crew's context; wait for the goroutines with stopping.wait(c.name, c.done()).
func (c *crew) stop() { c.cancel() }

// done is closed once every goroutine of the crew has returned.
func (c *crew) done() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(ch)
	}()
	return ch
}

// stopping runs an ordered shutdown against one deadline. Calls that take a context get ctx, which ends at the
// deadline. Each step is waited for until then, and past it for what is left of a short grace in which steps cut
// short by their context return; a step still running after that is given up on and named in the error, so that a
// stuck dependency (a database that stopped answering) cannot hold the process much past --shutdown-timeout.
// Steps after the deadline are still started, in order: most take a context and end at once.
type stopping struct {
	ctx       context.Context // ends at the deadline
	hard      context.Context // ends stopGrace later
	timeout   time.Duration
	log       *slog.Logger
	abandoned []string
}

// stopGrace is how long past the deadline shutdown waits, in all, for steps to return once their context ended.
const stopGrace = time.Second

// stepGrace is how long each step started after stopGrace is waited for.
const stepGrace = 50 * time.Millisecond

func newStopping(timeout time.Duration, log *slog.Logger) (*stopping, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	hard, cancelHard := context.WithTimeout(context.Background(), timeout+stopGrace)
	return &stopping{ctx: ctx, hard: hard, timeout: timeout, log: log}, func() { cancel(); cancelHard() }
}

// wait waits for done until the deadline and its grace, or gives up on what.
func (s *stopping) wait(what string, done <-chan struct{}) {
	select {
	case <-done:
		return
	case <-s.hard.Done():
	}
	// Past the grace, a step whose context has ended still gets a moment to return before it is reported.
	t := time.NewTimer(stepGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Error("shutdown deadline passed; not waiting any longer", "for", what, "timeout", s.timeout)
		s.abandoned = append(s.abandoned, what)
	}
}

// do runs fn and waits for it until the deadline, or gives up on it (fn then goes on in the background until the
// process exits).
func (s *stopping) do(what string, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	s.wait(what, done)
}

// err says what was given up on, nil if nothing.
func (s *stopping) err() error {
	if len(s.abandoned) == 0 {
		return nil
	}
	return fmt.Errorf("shutdown did not finish within %v: gave up waiting for %s", s.timeout,
		strings.Join(s.abandoned, ", "))
}
