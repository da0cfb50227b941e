package ingest_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ingest/ingesttest"
)

// The README's example on both backends: key A3-00F1B2 registered alone, then the V13 vector from test-device,
// whose heartbeat carries that key, is posted twice. One device holds the key and the data; no phantom A300F1B2.
func TestHeartbeatKeyLinksToItsDevice(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "chunk", "testdata", "v13_batch.hex"))
	if err != nil {
		t.Fatal(err)
	}
	body := unhex(strings.TrimSpace(string(raw)))
	for _, b := range ingesttest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			log := slog.New(slog.DiscardHandler)
			w := ingest.NewWriter(b.Store, ingest.WriterConfig{}, log)
			defer w.Close()
			svc := ingest.NewService(w, ingest.Config{Linker: b.Store}, log)
			name := "bench unit"
			if res, err := b.Store.RegisterDevices(ctx, []lodestone.DeviceRegistration{{Key: 0xA300F1B2,
				Name: &name}}); err != nil || res[0].Err != nil {
				t.Fatalf("register: %v %+v", err, res)
			}
			for range 2 {
				if res, err := svc.Ingest(ctx, ingest.Request{Body: body}); err != nil || res.Stored != 4 {
					t.Fatalf("ingest: %+v %v", res, err)
				}
			}
			devs, err := b.Store.FindDevices(ctx, lodestone.DeviceFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != 1 || devs[0].DeviceID != "test-device" || devs[0].DeviceKey == nil ||
				*devs[0].DeviceKey != 0xA300F1B2 || devs[0].Name == nil || *devs[0].Name != name {
				t.Fatalf("devices after the posts: %d, first %+v", len(devs), devs[0])
			}
			hbs, err := b.Store.FindHeartbeats(ctx, lodestone.TelemetryFilter{DeviceID: "test-device"})
			if err != nil || len(hbs) != 2 {
				t.Fatalf("heartbeats of test-device: %d %v", len(hbs), err)
			}
		})
	}
}
