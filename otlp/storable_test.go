package otlp_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// logBackend is a store the receiver can run on.
type logBackend interface {
	lodestone.LogStore
	lodestone.CrashUploadStore
	Close() error
}

var backends = []struct {
	name string
	open func(t testing.TB) logBackend
}{
	{"sqlite", func(t testing.TB) logBackend {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"),
			sqlite.Options{Synchronous: "FULL"})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}},
	{"postgres", func(t testing.TB) logBackend {
		db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}},
}

// serveOn runs a receiver on db and returns its address.
func serveOn(t testing.TB, db logBackend) string {
	t.Helper()
	blobs, err := disk.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return serveWith(t, db, otlp.Deps{Blobs: blobs})
}

// serveWith runs a receiver on db, with the blob store and logger of deps, and returns its address; the store is
// closed after the receiver when the test ends.
func serveWith(t testing.TB, db logBackend, deps otlp.Deps) string {
	t.Helper()
	tf, err := otlp.ParseTokenFile([]byte(tokenTOML))
	if err != nil {
		t.Fatal(err)
	}
	deps.Logs, deps.Crashes = db, db
	srv, err := otlp.New(otlp.Config{Tokens: tf}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		receive(t, done, time.Minute, "Serve's return after cancel")
		db.Close()
	})
	return ln.Addr().String()
}

// nulRequest has two records PostgreSQL cannot store as sent (NUL in severity_text, in event_name) between two
// that it can, NUL in their body, attribute key and value, scope name and a resource attribute included.
func nulRequest(device string) *collogspb.ExportLogsServiceRequest {
	rec := func(body, sevText, event string) *logspb.LogRecord {
		return &logspb.LogRecord{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN, SeverityText: sevText,
			EventName: event, Body: anyv(body), Attributes: []*commonpb.KeyValue{kv("k\x00ey", "v\x00al")}}
	}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("device.id", device),
			kv("service.name", "svc\x00name")}},
		ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: "sc\x00ope", Version: "\x00"},
			LogRecords: []*logspb.LogRecord{
				rec("good \x00 one", "WARN", "ev"),
				rec("bad severity", "WA\x00RN", "ev"),
				rec("bad event", "WARN", "e\x00v"),
				rec("good two", "", ""),
			}}},
	}}}
}

// TestUnstorableRecordsArePartialSuccess is issue 13 item 3 for OTLP: NUL in severity_text or event_name made
// PostgreSQL fail the group commit, a 503 on every retry. Such records are now left out and reported as a
// partial success on both backends, over gRPC and OTLP/HTTP (protobuf and JSON), and the rest is stored.
func TestUnstorableRecordsArePartialSuccess(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t)
			addr := serveOn(t, db)
			check := func(how string, p *collogspb.ExportLogsPartialSuccess, device string) {
				t.Helper()
				if p.GetRejectedLogRecords() != 2 || !strings.Contains(p.GetErrorMessage(), "NUL") {
					t.Fatalf("%s: partial success %v", how, p)
				}
				got, err := db.FindLogs(context.Background(), lodestone.LogFilter{DeviceID: device})
				if err != nil || len(got) != 2 {
					t.Fatalf("%s: stored %d, %v", how, len(got), err)
				}
				for _, r := range got {
					if strings.Contains(r.Body, "bad") {
						t.Fatalf("%s: stored the unstorable record %+v", how, r)
					}
				}
			}

			c := dial(t, addr)
			ctx := withMD("authorization", "Bearer secret-token")
			resp, err := c.Export(ctx, nulRequest("grpc-dev"))
			if err != nil {
				t.Fatalf("gRPC: %v", err)
			}
			check("gRPC", resp.PartialSuccess, "grpc-dev")

			pb, _ := proto.Marshal(nulRequest("pb-dev"))
			hresp, body := postLogs(t, "http://"+addr+"/v1/logs", "application/x-protobuf", "", pb, "secret-token")
			var presp collogspb.ExportLogsServiceResponse
			if hresp.StatusCode != http.StatusOK || proto.Unmarshal(body, &presp) != nil {
				t.Fatalf("protobuf: %d %q", hresp.StatusCode, body)
			}
			check("HTTP protobuf", presp.PartialSuccess, "pb-dev")

			js, _ := protojson.Marshal(nulRequest("json-dev"))
			if !strings.Contains(string(js), `\u0000`) {
				t.Fatalf("JSON request has no NUL: %s", js)
			}
			hresp, body = postLogs(t, "http://"+addr+"/v1/logs", "application/json", "", js, "secret-token")
			var jresp collogspb.ExportLogsServiceResponse
			if hresp.StatusCode != http.StatusOK || protojson.Unmarshal(body, &jresp) != nil {
				t.Fatalf("JSON: %d %q", hresp.StatusCode, body)
			}
			check("HTTP JSON", jresp.PartialSuccess, "json-dev")

			// Nothing is poisoned: a clean export right after is a plain success.
			resp, err = c.Export(ctx, request(detritusResource("detritus", "after"), 3, "ok"))
			if err != nil || resp.PartialSuccess != nil {
				t.Fatalf("clean export after: %v %v", resp, err)
			}
			// A NUL in the identity is the client's error for the whole entry, never a 503.
			_, err = c.Export(ctx, request(&resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				kv("device.id", "a\x00b")}}, 1, "x"))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("NUL device.id: %v", err)
			}
		})
	}
}

// FuzzLogsExportNever5xx posts fuzzed records (every stored string field, the device id, and raw bytes as a
// body) to receivers on SQLite and, when LODESTONE_TEST_POSTGRES is set, PostgreSQL, over OTLP/HTTP protobuf and
// JSON: nothing a client sends may be answered 5xx, since exporters retry those for ever.
func FuzzLogsExportNever5xx(f *testing.F) {
	f.Add("WARN", "ev", "body", "key", "dev-1", []byte(nil))
	f.Add("WA\x00RN", "e\x00v", "b\x00dy", "k\x00", "dev\x00", []byte{0xff, 0x00})
	f.Add("\xff\xfe", "", "", "", "", []byte("\x0a\x02\x0a\x00"))
	f.Add(strings.Repeat("S", 300), strings.Repeat("é", 200), "", "", strings.Repeat("d", 257), []byte("{}"))
	addrs := []string{serveOn(f, backends[0].open(f))}
	if os.Getenv(pgtest.EnvVar) != "" {
		addrs = append(addrs, serveOn(f, backends[1].open(f)))
	}
	f.Fuzz(func(t *testing.T, sev, event, body, key, device string, raw []byte) {
		req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("device.id", device)}},
			ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{SeverityText: sev, EventName: event,
				Body: anyv(body), Attributes: []*commonpb.KeyValue{kv(key, body)}}}}},
		}}}
		var bodies [][2]string
		if pb, err := proto.Marshal(req); err == nil { // invalid UTF-8 cannot be marshalled; raw covers it
			bodies = append(bodies, [2]string{"application/x-protobuf", string(pb)})
		}
		if js, err := protojson.Marshal(req); err == nil {
			bodies = append(bodies, [2]string{"application/json", string(js)})
		}
		bodies = append(bodies, [2]string{"application/x-protobuf", string(raw)},
			[2]string{"application/json", string(raw)})
		for _, addr := range addrs {
			for _, b := range bodies {
				resp, answer := postLogs(t, "http://"+addr+"/v1/logs", b[0], "", []byte(b[1]), "secret-token")
				if resp.StatusCode >= 500 {
					t.Fatalf("%s %q: %d %q", b[0], b[1], resp.StatusCode, answer)
				}
			}
		}
	})
}
