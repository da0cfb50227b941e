package ingest_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ingest/ingesttest"
)

// FuzzIngest sends arbitrary bodies through the whole pipeline into a real SQLite store and, when a PostgreSQL
// test server is configured, a real PostgreSQL schema: whatever a client sends, storage must never fail (that
// would be a 503 the client retries forever), and the result must add up. keyed sends the body as if a device
// key for the header's device (or "keyed") had authenticated it.
func FuzzIngest(f *testing.F) {
	for _, name := range []string{"v13_batch", "v07_fault_record", "v08_trace_fragment", "v10_encrypted_heartbeat",
		"v11_compressed_heartbeat", "v05_metrics"} {
		raw, err := os.ReadFile(filepath.Join("..", "chunk", "testdata", name+".hex"))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := hex.DecodeString(strings.TrimSpace(string(raw)))
		f.Add(b, "", false)
		f.Add(b, "header-device", false)
		f.Add(b, "test-device", true)
		f.Add(b, "", true)
	}
	backends := ingesttest.Open(f)
	f.Fuzz(func(t *testing.T, body []byte, header string, keyed bool) {
		if len(header) > 128 {
			header = header[:128]
		}
		req := ingest.Request{Body: body, HeaderDeviceID: header}
		if keyed {
			req.KeyDevice = header
			if req.KeyDevice == "" {
				req.KeyDevice = "keyed"
			}
		}
		for _, b := range backends {
			res, err := b.Service.Ingest(context.Background(), req)
			if ingesttest.ServerFault(err) {
				t.Fatalf("%s: client data made storage fail: %v", b.Name, err)
			}
			if err != nil {
				continue
			}
			if res.Stored > res.ChunksReceived {
				t.Fatalf("%s: stored %d of %d chunks", b.Name, res.Stored, res.ChunksReceived)
			}
			if res.Stored < res.ChunksReceived && len(res.Errors) == 0 {
				t.Fatalf("%s: %d chunks not stored and no error says why", b.Name, res.ChunksReceived-res.Stored)
			}
		}
	})
}
