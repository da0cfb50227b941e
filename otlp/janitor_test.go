package otlp_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// gatedBlobs holds every Put after the first until the test opens the gate, so an upload can be caught between
// its blob Put and its index commit.
type gatedBlobs struct {
	lodestone.BlobStore
	puts    atomic.Int64
	reached chan struct{}
	gate    chan struct{}
}

func (g *gatedBlobs) Put(ctx context.Context, r io.Reader, max int64) (lodestone.BlobRef, bool, error) {
	ref, existed, err := g.BlobStore.Put(ctx, r, max)
	if g.puts.Add(1) == 2 {
		close(g.reached)
		<-g.gate
	}
	return ref, existed, err
}

func TestJanitorRetentionAndInFlightUpload(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := &gatedBlobs{BlobStore: d, reached: make(chan struct{}), gate: make(chan struct{})}
	tf, _ := otlp.ParseTokenFile([]byte(tokenTOML))
	srv, err := otlp.New(otlp.Config{Tokens: tf, Retention: otlp.RetentionConfig{BlobGrace: -1,
		LogsTTL: 24 * time.Hour, CrashesTTL: 48 * time.Hour, Interval: time.Hour}},
		otlp.Deps{Logs: db, Crashes: db, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	srv.SetClock(func() time.Time { return *clock.Load() })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	e := &env{addr: ln.Addr().String(), srv: srv, db: db}

	// An old log record and an old crash upload with dump D.
	if err := db.WriteLogs(context.Background(), []*lodestone.LogRecord{
		{Project: "p", DeviceID: "d", Time: now.Add(40 * time.Hour), Body: `"old"`, Attributes: "{}", ReceivedAt: now},
		{Project: "p", DeviceID: "d", Time: now.Add(60 * time.Hour), Body: `"new"`, Attributes: "{}", ReceivedAt: now}}); err != nil {
		t.Fatal(err)
	}
	ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))}, part{"dump", "", "", []byte("D")})
	if st, m := postCrash(t, e, ct, body, "secret-token"); st != 201 {
		t.Fatalf("first upload: %d %v", st, m)
	}
	// Three days later the upload has expired. A second upload of the same dump is caught after its blob Put
	// (a dedup onto D) and before its index commit, while the janitor runs.
	later := now.Add(72 * time.Hour)
	clock.Store(&later)
	upload := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer secret-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			upload <- 0
			return
		}
		resp.Body.Close()
		upload <- resp.StatusCode
	}()
	receive(t, blobs.reached, 10*time.Second, "the second upload's blob put")
	janitor := make(chan otlp.JanitorStats, 1)
	go func() {
		st, err := srv.RunJanitor(context.Background())
		if err != nil {
			t.Error(err)
		}
		janitor <- st
	}()
	select {
	case st := <-janitor:
		t.Fatalf("janitor finished while an upload was between blob and index: %+v", st)
	case <-time.After(300 * time.Millisecond): // the janitor must be waiting for the upload
	}
	close(blobs.gate)
	if st := receive(t, upload, 10*time.Second, "the second upload's answer"); st != 201 {
		t.Fatalf("second upload: %d", st)
	}
	st := receive(t, janitor, 10*time.Second, "the janitor's run once the upload committed")
	if st.LogsDeleted != 1 || st.UploadsDeleted != 1 || st.BlobsDeleted != 0 {
		t.Fatalf("janitor stats %+v", st)
	}
	ups, _ := db.FindCrashUploads(context.Background(), lodestone.CrashUploadFilter{})
	if len(ups) != 1 {
		t.Fatalf("%d uploads", len(ups))
	}
	if _, err := d.Stat(context.Background(), ups[0].Dump.SHA256); err != nil {
		t.Fatalf("the in-flight upload's blob was deleted: %v", err)
	}
	if got, _ := db.FindLogs(context.Background(), lodestone.LogFilter{}); len(got) != 1 || got[0].Body != `"new"` {
		t.Fatalf("logs after retention: %+v", got)
	}
	// When that upload expires too, its blob goes.
	muchLater := later.Add(72 * time.Hour)
	clock.Store(&muchLater)
	st, err = srv.RunJanitor(context.Background())
	if err != nil || st.UploadsDeleted != 1 || st.BlobsDeleted != 1 || st.BytesFreed != 1 {
		t.Fatalf("second cycle %+v %v", st, err)
	}
	if _, err := d.Stat(context.Background(), ups[0].Dump.SHA256); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("expired blob kept: %v", err)
	}
}
