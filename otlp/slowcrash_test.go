package otlp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/netguard"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// slowEnv is a receiver on db with a settable clock and a spool directory of its own.
type slowEnv struct {
	*env
	spool string
	clock atomic.Pointer[time.Time]
}

func newSlowEnv(t *testing.T, db logBackend, to netguard.Timeouts) *slowEnv {
	t.Helper()
	d, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tf, err := otlp.ParseTokenFile([]byte(tokenTOML))
	if err != nil {
		t.Fatal(err)
	}
	se := &slowEnv{spool: t.TempDir()}
	srv, err := otlp.New(otlp.Config{Tokens: tf, Timeouts: to, SpoolDir: se.spool,
		Retention: otlp.RetentionConfig{BlobGrace: -1, CrashesTTL: 48 * time.Hour, Interval: time.Hour}},
		otlp.Deps{Logs: db, Crashes: db, Blobs: d})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	se.clock.Store(&now)
	srv.SetClock(func() time.Time { return *se.clock.Load() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		db.Close()
	})
	se.env = &env{addr: ln.Addr().String(), srv: srv, db: nil, blobs: d}
	return se
}

// stallUpload opens a raw connection and sends a crash upload whose dump is dumpLen bytes long, but only its
// first sent bytes; the rest never comes. It returns the connection.
func stallUpload(t *testing.T, addr string, dumpLen, sent int) net.Conn {
	t.Helper()
	ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))},
		part{"dump", "", "", bytes.Repeat([]byte("S"), dumpLen)})
	cut := bytes.Index(body, []byte("name=\"dump\"")) + len("name=\"dump\"\r\n\r\n") + sent
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/crashes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token\r\n"+
		"Content-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, len(body))
	if _, err := c.Write(body[:cut]); err != nil {
		t.Fatal(err)
	}
	return c
}

// within fails the test unless ch yields within 10 s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10 s", what)
	}
	var zero T
	return zero
}

// TestStalledCrashUploadBlocksNobody is issue 21's reproduction: a crash upload that stalls in the middle of its
// dump held the janitor's read lock, so the janitor waited for it and, queued behind the janitor's writer lock,
// so did every other upload. Now the body is spooled first and the lock taken only to store it.
func TestStalledCrashUploadBlocksNobody(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e := newSlowEnv(t, tc.open(t), netguard.Timeouts{Read: time.Minute})
			// An upload that will have expired, so that the janitor has a blob to sweep and needs the lock.
			ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))},
				part{"dump", "", "", []byte("expired dump")})
			if st, m := postCrash(t, e.env, ct, body, "secret-token"); st != 201 {
				t.Fatalf("first upload: %d %v", st, m)
			}
			later := e.clock.Load().Add(72 * time.Hour)
			e.clock.Store(&later)

			midDump := make(chan struct{})
			var once atomic.Bool
			e.srv.OnPartSpooling(func(name string) {
				if name == "dump" && once.CompareAndSwap(false, true) {
					close(midDump)
				}
			})
			c := stallUpload(t, e.addr, 1<<20, 100)
			within(t, midDump, "stalled upload reaching its dump")
			answered := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(c).ReadString('\n')
				answered <- line
			}()

			janitor := make(chan error, 1)
			var st otlp.JanitorStats
			go func() {
				var err error
				st, err = e.srv.RunJanitor(context.Background())
				janitor <- err
			}()
			other := make(chan int, 1)
			go func() {
				ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))},
					part{"dump", "", "", []byte("another dump")})
				req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				req.Header.Set("Authorization", "Bearer secret-token")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					other <- 0
					return
				}
				resp.Body.Close()
				other <- resp.StatusCode
			}()
			if err := within(t, janitor, "janitor while an upload stalls"); err != nil {
				t.Fatal(err)
			}
			if st.UploadsDeleted != 1 || st.BlobsDeleted != 1 {
				t.Fatalf("janitor stats %+v", st)
			}
			if code := within(t, other, "another upload while one stalls"); code != 201 {
				t.Fatalf("other upload: %d", code)
			}
			select {
			case line := <-answered:
				t.Fatalf("the stalled upload was answered %q before the test let it go", line)
			default:
			}
		})
	}
}

// TestStalledCrashUploadIsCutOff: the crash route's body reads are bounded by the listener's read timeout. A dump
// that stops arriving is answered 408, and its spooled bytes are removed.
func TestStalledCrashUploadIsCutOff(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			e := newSlowEnv(t, tc.open(t), netguard.Timeouts{Read: 700 * time.Millisecond})
			spooled := make(chan struct{}, 1)
			e.srv.OnPartSpooling(func(name string) { spooled <- struct{}{} })
			c := stallUpload(t, e.addr, 1<<20, 512<<10) // past the in-memory part of the spool
			within(t, spooled, "upload reaching its dump")
			answered := make(chan string, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					answered <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
			}()
			if got := within(t, answered, "answer to a stalled upload"); !strings.HasPrefix(got, "408 ") ||
				!strings.Contains(got, "not received in time") {
				t.Fatalf("stalled upload answered %q, want a 408", got)
			}
			if left, _ := os.ReadDir(e.spool); len(left) != 0 {
				t.Fatalf("spool files left behind: %v", left)
			}
		})
	}
}

// TestStalledCrashUploadIsCutOffOverH2C: on HTTP/2 (h2c, the gRPC port's protocol) the read timeout bounds each
// stream, so a crash upload whose body stalls is answered 408 there too.
func TestStalledCrashUploadIsCutOffOverH2C(t *testing.T) {
	e := newSlowEnv(t, backends[0].open(t), netguard.Timeouts{Read: 700 * time.Millisecond})
	ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))},
		part{"dump", "", "", bytes.Repeat([]byte("S"), 1<<20)})
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(body[:len(body)/2]) // then nothing more
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protos}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", pr)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer secret-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("stalled h2c upload: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled h2c upload answered %s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
}

// TestLargeCrashUploadSpooled: parts past the in-memory share of the spool go through temporary files and are
// stored byte for byte; the files are gone once the upload is answered.
func TestLargeCrashUploadSpooled(t *testing.T) {
	e := newSlowEnv(t, backends[0].open(t), netguard.Timeouts{})
	parts := []part{{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))},
		{"dump", "", "", bytes.Repeat([]byte("D"), 300<<10)}}
	for i := range 5 {
		parts = append(parts, part{fmt.Sprintf("attach:a%d", i), "text/plain", "",
			bytes.Repeat([]byte{byte('a' + i)}, 100<<10+i)})
	}
	ct, body := envelope(parts...)
	if st, m := postCrash(t, e.env, ct, body, "secret-token"); st != 201 {
		t.Fatalf("upload: %d %v", st, m)
	}
	for _, p := range parts[1:] {
		sum := sha256.Sum256(p.body)
		b, err := e.blobs.Open(context.Background(), hex.EncodeToString(sum[:]))
		if err != nil {
			t.Fatalf("part %s not stored as sent: %v", p.name, err)
		}
		b.Close()
	}
	if left, _ := os.ReadDir(e.spool); len(left) != 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
}
