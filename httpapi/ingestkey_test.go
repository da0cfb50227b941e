package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// ingestBackends are the stores the ingest tests run a full server on.
var ingestBackends = []struct {
	name string
	open func(*testing.T) lodestone.Store
}{{"sqlite", openSQLite}, {"postgres", openPostgres}}

// TestDeviceKeyCannotSpeakForAnotherDevice: with device A's key, a body whose DeviceInfo names device B is refused
// whole (403, as a mismatched X-Device-Id is), so B's firmware version and metrics stay as they were, no update is
// offered for B and B's campaign state does not move to installed. The fleet's ingest key keeps its multi-device
// bodies.
func TestDeviceKeyCannotSpeakForAnotherDevice(t *testing.T) {
	for _, tc := range ingestBackends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			e := newFerriteEnv(t, store, authOpts{apiKey: "fleet-key"})
			keyA := e.do("POST", "/devices/dev-a/keys", asAdmin, nil).must(t, 201).body["secret"].(string)
			fleet := apiKey("fleet-key")
			e.do("POST", "/ingest/chunks", fleet, append(otaSession("dev-a", "1.0", 10),
				otaSession("dev-b", "1.0", 10)...)).must(t, 200)

			img := image(4096)
			art := e.do("POST", "/ota/firmware", asAdmin, img, "X-Firmware-Version", "2.0", "X-Build-Id", "20").
				must(t, 200).body["artifact"].(map[string]any)
			camp := e.do("POST", "/ota/campaigns", asAdmin, map[string]any{"name": "to 2.0",
				"firmware_id": art["id"], "target_version": "2.0", "device_ids": []string{"dev-b"},
				"waves": []int{100}, "soak_seconds": 0, "health_ratio": 0}).must(t, 201)
			cid := int(camp.body["campaign"].(map[string]any)["id"].(float64))
			e.do("POST", fmt.Sprintf("/ota/campaigns/%d/activate", cid), asAdmin, nil).must(t, 200)

			// A's key, B's DeviceInfo claiming the campaign's version, and a metric for B.
			attack := otaSession("dev-b", "2.0", 20)
			attack = chunk.Chunk{Type: chunk.TypeMetrics, Flags: chunk.FlagLast, Seq: 2,
				Payload: chunk.AppendMetricsPayload(nil, []chunk.Metric{chunk.CounterMetric("forged", 1, 1)})}.
				AppendEncode(attack)
			for _, c := range []cred{apiKey(keyA), bearer(keyA)} {
				a := e.do("POST", "/ingest/chunks", c, attack).must(t, 403)
				if a.body["ok"] != false || !strings.Contains(a.raw, `dev-b`) || strings.Contains(a.raw, `"ota"`) {
					t.Fatalf("refusal %s", a.raw)
				}
			}
			// Also after A's own DeviceInfo, and with A's own id in the header.
			mixed := append(otaSession("dev-a", "1.1", 11), attack...)
			e.do("POST", "/ingest/chunks", apiKey(keyA), mixed).must(t, 403)
			e.do("POST", "/ingest/chunks", apiKey(keyA), attack, "X-Device-Id", "dev-a").must(t, 403)

			ctx := context.Background()
			b, err := store.FindDeviceByID(ctx, "dev-b")
			if err != nil || b.FirmwareVersion != "1.0" || b.BuildID != 10 {
				t.Fatalf("dev-b after the attack: %+v %v", b, err)
			}
			if ms, err := store.FindMetrics(ctx, lodestone.MetricFilter{
				TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "dev-b"}}); err != nil || len(ms) != 0 {
				t.Fatalf("dev-b metrics %d %v", len(ms), err)
			}
			if a, err := store.FindDeviceByID(ctx, "dev-a"); err != nil || a.FirmwareVersion != "1.0" {
				t.Fatalf("dev-a changed by a refused request: %+v %v", a, err)
			}
			sum := e.do("GET", fmt.Sprintf("/ota/campaigns/%d", cid), asAdmin, nil).must(t, 200)
			if got := sum.body["campaign"].(map[string]any)["installed"]; got != float64(0) {
				t.Fatalf("campaign after the attack: %s", sum.raw)
			}

			// A speaks for itself; the fleet key still speaks for B, whose install is then confirmed.
			e.do("POST", "/ingest/chunks", apiKey(keyA), otaSession("dev-a", "1.1", 11)).must(t, 200)
			if a, _ := store.FindDeviceByID(ctx, "dev-a"); a.FirmwareVersion != "1.1" {
				t.Fatalf("dev-a own report: %+v", a)
			}
			e.do("POST", "/ingest/chunks", fleet, append(otaSession("dev-a", "1.1", 11),
				otaSession("dev-b", "2.0", 20)...)).must(t, 200)
			sum = e.do("GET", fmt.Sprintf("/ota/campaigns/%d", cid), asAdmin, nil).must(t, 200)
			if got := sum.body["campaign"].(map[string]any)["installed"]; got != float64(1) {
				t.Fatalf("campaign after B's real report: %s", sum.raw)
			}
		})
	}
}
