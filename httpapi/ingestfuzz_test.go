package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest/ingesttest"
	"github.com/lodestone-fleet/lodestone/ota"
)

// FuzzIngestHTTP posts arbitrary bodies, with an arbitrary X-Device-Id, to /ingest/chunks of a server over SQLite
// and, when configured, PostgreSQL: the answer is never a 5xx (data is never "retry later") and always ferrite's
// shape. One server per store serves every input.
func FuzzIngestHTTP(f *testing.F) {
	for _, names := range [][]string{{"V1", "V4", "V5", "V2"}, {"V1", "V7"}, {"V1", "V8"}, {"V10"}, {"V11"},
		{"V4"}, {"V13"}} {
		f.Add(v(names...), "")
		f.Add(v(names...), "test-device")
	}
	f.Add(bytes.Join([][]byte{edgeInfo("d", "1", 1), edgeFrame(chunk.TypeTraceFragment, chunk.FlagLast,
		make([]byte, 8))}, nil), "")
	f.Add(edgeInfo("a\x00b", "1\x00", 1), "")
	f.Add(edgeMetrics(chunk.CounterMetric("k\x00", 1, 1)), "dev")
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	var urls []string
	var client *http.Client
	for _, b := range ingesttest.Open(f) {
		admin, _, err := httpapi.NewBasicAuth(ctx, b.Store, "admin", adminPass)
		if err != nil {
			f.Fatal(err)
		}
		otaSvc := ota.NewService(b.Store, b.Store, ota.Config{Logger: log})
		api := httpapi.New(httpapi.Config{}, httpapi.Deps{Ingest: b.Service, Devices: b.Store,
			Telemetry: b.Store, Auth: admin, IngestKey: httpapi.NewAPIKey(""), Logger: log, OTA: otaSvc})
		hs := api.HTTPServer("", ctx)
		srv := httptest.NewUnstartedServer(hs.Handler)
		srv.Config = hs
		srv.Start()
		f.Cleanup(srv.Close)
		urls, client = append(urls, srv.URL), srv.Client()
	}
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		for _, u := range urls {
			req, _ := http.NewRequest(http.MethodPost, u+"/ingest/chunks", bytes.NewReader(body))
			if header != "" {
				req.Header["X-Device-Id"] = []string{header}
			}
			resp, err := client.Do(req)
			if err != nil {
				if header != "" {
					return // a header value no HTTP client sends
				}
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var answer struct {
				OK     *bool    `json:"ok"`
				Errors []string `json:"errors"`
			}
			if resp.StatusCode >= 500 || json.Unmarshal(raw, &answer) != nil || answer.OK == nil {
				t.Fatalf("%s: %d %s", u, resp.StatusCode, raw)
			}
		}
	})
}
