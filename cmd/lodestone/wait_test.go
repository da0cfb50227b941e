package main

import (
	"testing"
	"time"
)

// Tests here wait for processes, servers and streams; every wait has a deadline, so that a stuck server fails its
// test with a message instead of hanging the run until go test's own timeout.

// waitFor fails the test unless cond holds within timeout; what says what did not happen.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive returns the next value on ch, failing the test if none comes within timeout.
func receive[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("not within %v: %s", timeout, what)
	}
	panic("unreachable")
}

// wait returns the exit of p, failing the test if it is still running after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.exited:
		return err
	case <-time.After(timeout):
		t.Fatalf("lodestone still running %v later\n%s", timeout, p.stderr.String())
	}
	panic("unreachable")
}
