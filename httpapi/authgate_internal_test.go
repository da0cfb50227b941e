package httpapi

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
)

// Password hashes run in a fixed number of slots with a bounded queue; past it a check is refused at once (503)
// instead of queueing without end.
func TestPasswordChecksAreBounded(t *testing.T) {
	a, err := NewAuthn(AuthConfig{BcryptCost: bcrypt.MinCost, MaxChecks: 2, MaxQueued: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var held []func()
	for range 2 {
		release, err := a.slot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	waiting := make(chan error, 3)
	for range 3 {
		go func() {
			release, err := a.slot(ctx)
			if err == nil {
				release()
			}
			waiting <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); a.queued.Load() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks queued after 10s, want 3", a.queued.Load())
		}
	}
	if _, err := a.slot(ctx); lodestone.ErrorCode(err) != lodestone.EUNAVAILABLE {
		t.Fatalf("a check past the queue: %v, want unavailable", err)
	}
	for _, release := range held {
		release()
	}
	for range 3 {
		select {
		case err := <-waiting:
			if err != nil {
				t.Fatalf("a queued check: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a queued check still waits after every slot was released")
		}
	}
}
