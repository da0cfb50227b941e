// Command embed runs lodestone's log and crash receiver inside another program: a SQLite store and a blob
// directory in a temporary directory, the receiver on a kernel-assigned port, one OTLP export and one crash
// upload through real clients, a query of what was stored, and a shutdown by cancelling the context.
//
//	go run ./examples/embed
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "lodestone-embed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "lodestone.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	blobs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	// The same TOML a detritusd deployment uses; the secret is an Argon2id PHC string.
	tokens, err := otlp.ParseTokenFile([]byte(`[[token]]
id = "embed"
secret = "` + otlp.HashToken("demo-token") + `"
project = "demo"
source_prefix = "demo/"
`))
	if err != nil {
		return err
	}
	srv, err := otlp.New(otlp.Config{Tokens: tokens}, otlp.Deps{Logs: db, Crashes: db, Blobs: blobs,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the kernel picks the port
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(runCtx, ln) }()
	fmt.Println("receiver on", addr)

	// An OTLP log export over gRPC, as an OpenTelemetry exporter sends it.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("device.id", "sensor-1")}},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
			{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO",
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "booted"}}},
			{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, SeverityText: "ERROR",
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "i2c timeout"}}},
		}}}}}}
	mdCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer demo-token")
	if _, err := collogspb.NewLogsServiceClient(cc).Export(mdCtx, req); err != nil {
		return fmt.Errorf("export: %w", err)
	}

	// A detritus crash upload over HTTP/1.1.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part := func(name string, data string) {
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Disposition": {`form-data; name="` + name + `"`}})
		io.WriteString(w, data)
	}
	part("metadata", `{"schema_version":1,"source":{"project":"demo","platform":"linux","version":"1.0",
		"install_id":"11111111-1111-1111-1111-111111111111"},"timestamp":"2026-05-19T00:00:00Z","kind":"Minidump",
		"build":{"git_sha":"abc","profile":"release","target_triple":"thumbv7em-none-eabihf"},"context":{},"attachments":[]}`)
	part("dump", "MDMP... crash dump bytes")
	mw.Close()
	hreq, _ := http.NewRequest("POST", "http://"+addr+"/v1/crashes", &body)
	hreq.Header.Set("Content-Type", mw.FormDataContentType())
	hreq.Header.Set("Authorization", "Bearer demo-token")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("crash upload: %d %s", resp.StatusCode, answer)

	recs, err := db.FindLogs(ctx, lodestone.LogFilter{DeviceID: "sensor-1"})
	if err != nil {
		return err
	}
	for _, r := range recs {
		fmt.Printf("log: device=%s severity=%s body=%s\n", r.DeviceID, r.SeverityText, r.Body)
	}
	ups, err := db.FindCrashUploads(ctx, lodestone.CrashUploadFilter{Project: "demo"})
	if err != nil {
		return err
	}
	fmt.Printf("crash uploads stored: %d (dump %s…)\n", len(ups), ups[0].Dump.SHA256[:12])

	stop() // the context stops the receiver; queued records are committed before Serve returns
	if err := <-served; err != nil {
		return err
	}
	fmt.Println("stopped")
	return nil
}
