package httpapi_test

import (
	"testing"
	"time"
)

// receive returns the next value on ch, failing the test if none comes within timeout: a stuck server fails its
// test with a message instead of hanging the run.
func receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("not within %v: %s", timeout, what)
	}
	panic("unreachable")
}

// waitUntil fails the test unless cond holds within timeout; what says what did not happen.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
