package loadgen_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/loadgen"
)

func TestBodiesAreRealSessions(t *testing.T) {
	f := loadgen.Fleet{Devices: 5, PerRequest: 3, MetricsPerSession: 20, RebootRate: 1, FaultRate: 1, Seed: 9}
	bodies := f.Bodies(4)
	if len(bodies) != 4 {
		t.Fatalf("%d bodies", len(bodies))
	}
	seen := map[string]int{}
	for i, b := range bodies {
		frames, bad := chunk.DecodeStream(b.Data, nil, nil)
		if len(bad) != 0 || len(frames) != b.Chunks {
			t.Fatalf("body %d: %d frames (reported %d), bad %v", i, len(frames), b.Chunks, bad)
		}
		var sessions, metrics int
		var inSession bool
		for _, fr := range frames {
			if fr.Size() > 256 {
				t.Fatalf("chunk of %d bytes: larger than the SDK sends", fr.Size())
			}
			switch fr.Type {
			case chunk.TypeDeviceInfo:
				if inSession {
					t.Fatal("session without a closing heartbeat")
				}
				d, err := chunk.ParseDeviceInfo(fr.Payload)
				if err != nil {
					t.Fatal(err)
				}
				seen[d.DeviceID]++
				inSession, sessions = true, sessions+1
			case chunk.TypeHeartbeat:
				if !inSession {
					t.Fatal("heartbeat outside a session")
				}
				inSession = false
			case chunk.TypeMetrics:
				ms, err := chunk.ParseMetrics(nil, fr.Payload)
				if err != nil {
					t.Fatal(err)
				}
				metrics += len(ms)
			case chunk.TypeFaultRecord:
				if _, err := chunk.ParseFault(fr.Payload); err != nil {
					t.Fatal(err)
				}
			case chunk.TypeRebootReason:
				if _, err := chunk.ParseReboot(fr.Payload); err != nil {
					t.Fatal(err)
				}
			}
		}
		if sessions != 3 || metrics != 60 {
			t.Fatalf("body %d: %d sessions, %d metrics", i, sessions, metrics)
		}
	}
	// 12 sessions over 5 devices, round robin.
	if len(seen) != 5 || seen["lg-000000"] != 3 || seen["lg-000004"] != 2 {
		t.Fatalf("device spread %v", seen)
	}
	again := f.Bodies(4)
	for i := range bodies {
		if string(again[i].Data) != string(bodies[i].Data) {
			t.Fatal("same seed, different bodies")
		}
	}
}
