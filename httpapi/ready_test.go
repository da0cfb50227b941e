package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// readyServer serves only what /readyz needs: the store and the blob store.
func readyServer(t *testing.T, store lodestone.Store, blobs lodestone.BlobStore, ttl time.Duration) string {
	t.Helper()
	api := httpapi.New(httpapi.Config{ReadyCacheTTL: ttl}, httpapi.Deps{Devices: store, Telemetry: store,
		Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func getReady(t *testing.T, base string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("/readyz took %v", d)
	}
	return resp.StatusCode, string(b)
}

func wantReady(t *testing.T, base string, status int, fragment string) {
	t.Helper()
	if st, body := getReady(t, base); st != status || !strings.Contains(body, fragment) {
		t.Fatalf("/readyz = %d %s, want %d with %q", st, body, status, fragment)
	}
}

// /readyz answers 503 while the database or the blob store cannot be reached, so that a load balancer stops
// sending to a replica that cannot commit; the check is cached for a short time.
func TestReadyzChecksStorageSQLite(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobDir := filepath.Join(dir, "blobs")
	blobs, err := disk.Open(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	live := readyServer(t, db, blobs, -1)
	cached := readyServer(t, db, blobs, time.Hour)
	wantReady(t, live, 200, `"ready"`)
	wantReady(t, cached, 200, `"ready"`)

	// The blob directory is gone (an unmounted volume): blobs cannot be stored.
	if err := os.Rename(blobDir, blobDir+".away"); err != nil {
		t.Fatal(err)
	}
	wantReady(t, live, 503, "blob store")
	if err := os.Rename(blobDir+".away", blobDir); err != nil {
		t.Fatal(err)
	}
	wantReady(t, live, 200, `"ready"`)

	db.Close()
	wantReady(t, live, 503, "database")
	wantReady(t, cached, 200, `"ready"`) // within its cache time, the last answer stands
}

// pgProxy forwards TCP connections to PostgreSQL until cut, which closes the listener and every connection:
// the database becomes unreachable from the replica's side.
type pgProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	stalled bool // accept, never answer: a network partition rather than a refused connection
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			stalled := p.stalled
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if stalled {
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *pgProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// stall drops every open connection and leaves new ones unanswered.
func (p *pgProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestReadyzChecksStoragePostgres(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	db, err := postgres.Open(context.Background(), u.String(), postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	live := readyServer(t, db, blobs, -1)
	wantReady(t, live, 200, `"ready"`)
	proxy.stall() // unanswered: the check's own timeout decides
	wantReady(t, live, 503, "database")
	proxy.cut() // refused
	wantReady(t, live, 503, "database")
}
