package otlp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// A log tail that stops reading is dropped once about a megabyte of log batches waits for it, not after 256
// batches of any size; a tail that keeps up gets every batch.
func TestFanoutStalledTailBoundedInBytes(t *testing.T) {
	f := otlp.NewFanout()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stalled, err := f.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	live, _ := f.Subscribe(ctx, 0)
	pad := bytes.Repeat([]byte("x"), 64<<10)
	for i := range 100 {
		data, _ := json.Marshal([]map[string]any{{"i": i, "body": string(pad)}})
		f.Publish(ctx, lodestone.Event{Type: lodestone.EventLogs, DeviceID: fmt.Sprint("d", i), Data: data})
		select {
		case e, ok := <-live:
			if !ok || e.DeviceID != fmt.Sprint("d", i) {
				t.Fatalf("live tail: event %d: %v %s", i, ok, e.DeviceID)
			}
		case <-ctx.Done():
		}
	}
	// Publish drops synchronously: the stalled tail is gone, its channel closed after what it had waiting.
	if n := f.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers after 6.4 MB waited for a stalled tail, want it dropped", n)
	}
	got := 0
	for range stalled {
		got++
	}
	if got > 18 {
		t.Fatalf("the stalled tail held %d batches of 64 KiB", got)
	}
}
