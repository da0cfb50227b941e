package ingest_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/ingest"
)

// FuzzIngest sends arbitrary bodies through the whole pipeline into a real SQLite store: whatever a client sends,
// storage must never fail (that would be a 500), and the result must add up.
func FuzzIngest(f *testing.F) {
	for _, name := range []string{"v13_batch", "v07_fault_record", "v08_trace_fragment", "v10_encrypted_heartbeat",
		"v11_compressed_heartbeat", "v05_metrics"} {
		raw, err := os.ReadFile(filepath.Join("..", "chunk", "testdata", name+".hex"))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := hex.DecodeString(strings.TrimSpace(string(raw)))
		f.Add(b, "")
		f.Add(b, "header-device")
	}
	db := openDB(f)
	key, _ := chunk.ParseKey("42424242424242424242424242424242")
	cipher, _ := chunk.NewCipher(key)
	w := ingest.NewWriter(db, ingest.WriterConfig{}, quiet)
	f.Cleanup(w.Close)
	svc := ingest.NewService(w, ingest.Config{Cipher: cipher}, quiet)
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if len(header) > 128 {
			header = header[:128]
		}
		res, err := svc.Ingest(context.Background(), ingest.Request{Body: body, HeaderDeviceID: header})
		if err != nil {
			t.Fatalf("storage failed on client data: %v", err)
		}
		if res.Stored > res.ChunksReceived {
			t.Fatalf("stored %d of %d chunks", res.Stored, res.ChunksReceived)
		}
		if res.Stored < res.ChunksReceived && len(res.Errors) == 0 {
			t.Fatalf("%d chunks not stored and no error says why", res.ChunksReceived-res.Stored)
		}
	})
}
