package ingest

import (
	"testing"
	"time"
)

func TestRecentDevicesWindowAndBound(t *testing.T) {
	r := newRecentDevices(30*time.Second, 3)
	t0 := time.Unix(1000, 0)
	r.set("10.0.0.1", "dev-a", t0)
	if got := r.get("10.0.0.1", t0.Add(29*time.Second)); got != "dev-a" {
		t.Fatalf("inside the window: %q", got)
	}
	if got := r.get("10.0.0.1", t0.Add(31*time.Second)); got != "" {
		t.Fatalf("after the window: %q", got)
	}
	if got := r.get("10.0.0.2", t0); got != "" {
		t.Fatalf("other address: %q", got)
	}
	// Full of live entries: a new address is not remembered, existing ones are refreshed.
	r.set("10.0.0.2", "dev-b", t0)
	r.set("10.0.0.3", "dev-c", t0)
	r.set("10.0.0.4", "dev-d", t0)
	if got := r.get("10.0.0.4", t0); got != "" {
		t.Fatalf("bounded map grew: %q", got)
	}
	r.set("10.0.0.1", "dev-z", t0)
	if got := r.get("10.0.0.1", t0); got != "dev-z" {
		t.Fatalf("refresh: %q", got)
	}
	// Once entries expire they are swept and room returns.
	later := t0.Add(time.Minute)
	r.set("10.0.0.9", "dev-9", later)
	if got := r.get("10.0.0.9", later); got != "dev-9" {
		t.Fatalf("after sweep: %q", got)
	}
	disabled := newRecentDevices(0, 10)
	disabled.set("x", "y", t0)
	if disabled.get("x", t0) != "" {
		t.Fatal("a zero window must disable address attribution")
	}
}

func TestConnNil(t *testing.T) {
	var c *Conn
	c.set("x") // a request without connection state must not panic
	if c.get() != "" {
		t.Fatal("nil conn remembered a device")
	}
	c = NewConn()
	c.set("dev")
	if c.get() != "dev" {
		t.Fatal("conn forgot its device")
	}
}
