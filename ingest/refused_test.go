package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ingest/ingesttest"
)

// TestStoreRefusalIsInvalidNotUnavailable: data that a store cannot hold, written past ingest's validation, is an
// EINVALID error on both stores, never the EUNAVAILABLE that tells a client to retry the same data forever; the
// store takes valid data right after.
func TestStoreRefusalIsInvalidNotUnavailable(t *testing.T) {
	for _, b := range ingesttest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			w := ingest.NewWriter(b.Store, ingest.WriterConfig{}, quiet)
			defer w.Close()
			bad := []*lodestone.DeviceBatch{{DeviceID: "d", TraceFragments: []lodestone.TraceFragment{{}}}}
			if b.Name == "postgres" {
				bad = append(bad, &lodestone.DeviceBatch{DeviceID: "a\x00b"})
			}
			for _, batch := range bad {
				err := w.Write(context.Background(), []*lodestone.DeviceBatch{batch})
				if lodestone.ErrorCode(err) != lodestone.EINVALID {
					t.Fatalf("%q: %v (code %s)", batch.DeviceID, err, lodestone.ErrorCode(err))
				}
			}
			if err := w.Write(context.Background(), []*lodestone.DeviceBatch{{DeviceID: "d",
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// poisoning gives device "poison" a trace fragment without data, which passes no validation, so that the real
// store refuses that device's batch.
type poisoning struct{ lodestone.TelemetryWriter }

func (p poisoning) WriteTelemetry(ctx context.Context, batches []*lodestone.DeviceBatch) error {
	for _, b := range batches {
		if b.DeviceID == "poison" && len(b.TraceFragments) == 0 {
			b.TraceFragments = append(b.TraceFragments, lodestone.TraceFragment{})
		}
	}
	return p.TelemetryWriter.WriteTelemetry(ctx, batches)
}

// TestIngestIsolatesADeviceTheStoreRefuses: when the store refuses one device's data, the request is not failed
// (no 503 retried forever): the other devices of the body are stored and the refused one is reported.
func TestIngestIsolatesADeviceTheStoreRefuses(t *testing.T) {
	for _, b := range ingesttest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			w := ingest.NewWriter(poisoning{b.Store}, ingest.WriterConfig{}, quiet)
			defer w.Close()
			svc := ingest.NewService(w, ingest.Config{}, quiet)
			var body []byte
			for _, dev := range []string{"good-1", "poison", "good-2"} {
				body = chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
					Payload: chunk.DeviceInfo{DeviceID: dev, FirmwareVersion: "1"}.AppendPayload(nil)}.AppendEncode(body)
				body = chunk.Chunk{Type: chunk.TypeHeartbeat, Flags: chunk.FlagLast,
					Payload: chunk.Heartbeat{UptimeTicks: 1}.AppendPayload(nil)}.AppendEncode(body)
			}
			res, err := svc.Ingest(context.Background(), ingest.Request{Body: body})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stored != 4 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], `"poison"`) ||
				len(res.Reported) != 2 {
				t.Fatalf("result %+v", res)
			}
			for dev, want := range map[string]int{"good-1": 1, "good-2": 1, "poison": 0} {
				hbs, err := b.Store.FindHeartbeats(context.Background(), lodestone.TelemetryFilter{DeviceID: dev})
				if err != nil || len(hbs) != want {
					t.Fatalf("%s: %d heartbeats, want %d (%v)", dev, len(hbs), want, err)
				}
			}
			// A body of the refused device alone is reported too, not failed.
			res, err = svc.Ingest(context.Background(), ingest.Request{Body: body[len(body)/3 : 2*len(body)/3]})
			if err != nil || res.Stored != 0 || len(res.Errors) != 1 {
				t.Fatalf("alone: %+v %v", res, err)
			}
		})
	}
}
