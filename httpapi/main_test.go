package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/ota"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// The ferrite spec's hand-built vectors (§9), in wire order.
var vec = map[string]string{
	"V1":  "EC 01 06 01 1A 00 00 00 0B 74 65 73 74 2D 64 65 76 69 63 65 05 31 2E 30 2E 30 EF BE AD DE 00 00 00 00 F3 A2",
	"V2":  "EC 01 01 01 18 00 01 00 39 30 00 00 00 00 00 00 00 04 00 00 05 00 00 00 00 00 00 00 B2 F1 00 A3 13 C3",
	"V3":  "EC 01 01 01 14 00 01 00 39 30 00 00 00 00 00 00 00 04 00 00 05 00 00 00 00 00 00 00 C5 65",
	"V4":  "EC 01 05 01 0A 00 02 00 04 00 2A 00 00 00 A0 86 01 00 0B 37",
	"V5":  "EC 01 02 01 44 00 03 00 03 06 63 6C 69 63 6B 73 00 2A 00 00 00 00 00 00 00 E8 03 00 00 00 00 00 00 04 74 65 6D 70 01 00 00 CC 41 00 00 00 00 D0 07 00 00 00 00 00 00 03 6C 61 74 02 00 00 C0 3F 00 00 04 41 B8 0B 00 00 00 00 00 00 0A C4",
	"V6":  "EC 01 07 01 0E 00 04 00 EF BE AD DE 00 00 00 00 00 01 01 00 00 00 66 27",
	"V7":  "EC010301950005000001000000020000000300000004000000050000000010000800200008000000610A0000000B0000000C0000000D0000000E0000000F0000001000000011000000003F0020EFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDEEFBEADDE0004000000000040000000000000000066BD",
	"V8":  "EC 01 04 01 0D 00 06 00 00 00 00 00 00 00 00 00 68 65 6C 6C 6F DB F3",
	"V9":  "EC 01 01 00 00 00 00 00 71 AD",
	"V10": "EC 01 01 05 2D 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 CE E7 12 2D 05 D4 03 F9 F1 54 D1 A9 E6 D0 15 94 5E 4F F2 CC 75 97 D4 24 3C BD 87 BE 89 51 B1 CB CD 96",
	"V11": "EC 01 01 09 12 00 01 00 18 00 39 30 FF 00 07 04 00 00 05 FF 00 07 B2 F1 00 A3 C9 A9",
}

func v(names ...string) []byte {
	var out []byte
	for _, n := range names {
		b, err := hex.DecodeString(strings.ReplaceAll(vec[n], " ", ""))
		if err != nil {
			panic(n + ": " + err.Error())
		}
		out = append(out, b...)
	}
	return out
}

const adminPass = "test-admin-pass"

type env struct {
	t     testing.TB
	srv   *httptest.Server
	db    *sqlite.DB
	api   *httpapi.Server
	bus   lodestone.EventBus
	blobs lodestone.BlobStore
	ota   *ota.Service
	camps *ota.Campaigns
}

type opts struct {
	key       string // CHUNK_ENCRYPTION_KEY
	apiKey    string
	maxBody   int64
	window    time.Duration
	queue     int                                                       // writer queue size; 0 = default
	wrap      func(lodestone.TelemetryWriter) lodestone.TelemetryWriter // wraps the real store's writes
	bus       lodestone.EventBus                                        // default: a new event.Broker
	keepAlive time.Duration
	signing   ed25519.PrivateKey // OTA manifest key
	public    bool               // PUBLIC_EVENTS
}

func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	var cipher *chunk.Cipher
	if o.key != "" {
		k, err := chunk.ParseKey(o.key)
		if err != nil {
			t.Fatal(err)
		}
		if cipher, err = chunk.NewCipher(k); err != nil {
			t.Fatal(err)
		}
	}
	admin, _, err := httpapi.NewBasicAuth(ctx, db, "admin", adminPass)
	if err != nil {
		t.Fatal(err)
	}
	var tw lodestone.TelemetryWriter = db
	if o.wrap != nil {
		tw = o.wrap(db)
	}
	if o.bus == nil {
		o.bus = event.NewBroker(event.BrokerConfig{})
	}
	w := ingest.NewWriter(tw, ingest.WriterConfig{QueueSize: o.queue, Events: o.bus}, log)
	svc := ingest.NewService(w, ingest.Config{Cipher: cipher, AddrWindow: o.window}, log)
	blobs, err := disk.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	otaSvc := ota.NewService(db, db, ota.Config{SigningKey: o.signing, Logger: log})
	camps := ota.NewCampaigns(otaSvc)
	api := httpapi.New(httpapi.Config{MaxBodyBytes: o.maxBody, KeepAlive: o.keepAlive, PublicEvents: o.public}, httpapi.Deps{Ingest: svc,
		Devices: db, Telemetry: db, Auth: admin, IngestKey: httpapi.NewAPIKey(o.apiKey), Logger: log,
		Events: o.bus, Blobs: blobs, OTA: otaSvc, Campaigns: camps, Backup: db, Reports: db})
	hs := api.HTTPServer("", context.Background())
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		w.Close()
		db.Close()
	})
	return &env{t: t, srv: srv, db: db, api: api, bus: o.bus, blobs: blobs, ota: otaSvc, camps: camps}
}

type ingestResp struct {
	OK             bool     `json:"ok"`
	ChunksReceived int      `json:"chunks_received"`
	Errors         []string `json:"errors"`
}

// post sends a body to /ingest/chunks with optional headers (name, value pairs) and decodes the answer.
func (e *env) post(client *http.Client, body []byte, hdr ...string) (int, ingestResp, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ingest/chunks", bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if client == nil {
		client = e.srv.Client()
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r ingestResp
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("ingest answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, r, string(raw)
}

// get fetches path as the admin and decodes the JSON answer into out.
func (e *env) get(path string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.SetBasicAuth("admin", adminPass)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("GET %s: content type %q", path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("GET %s: %v in %q", path, err, raw)
		}
	}
	return resp.StatusCode
}

type deviceResp struct {
	Device map[string]any `json:"device"`
}

type listResp struct {
	Devices    []map[string]any `json:"devices"`
	Faults     []map[string]any `json:"faults"`
	Metrics    []map[string]any `json:"metrics"`
	Reboots    []map[string]any `json:"reboots"`
	Heartbeats []map[string]any `json:"heartbeats"`
	Traces     []map[string]any `json:"traces"`
	Error      string           `json:"error"`
}
