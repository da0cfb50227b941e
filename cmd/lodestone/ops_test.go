package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/alert"
)

// The real binary alerts a webhook that is down at first: the offline alert waits in the queue across a restart
// and arrives once the receiver is up; the device's return follows.
func TestAlertsOnTheBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	hook := freeAddr(t) // nothing listens there yet
	env := []string{"BASIC_AUTH_PASS=pw", "ALERT_WEBHOOK_URL=http://" + hook + "/hook", "ALERT_WEBHOOK_SECRET=k"}
	args := []string{"--offline-after", "1s", "--jobs-interval", "100ms", "--alert-retry", "100ms"}
	p := startWith(t, bin, dir, args, env...)
	post := func(p *proc) {
		t.Helper()
		resp, err := http.Post("http://"+p.addr+"/ingest/chunks", "application/octet-stream",
			bytes.NewReader(session("e2e", 1)))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("ingest: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	post(p)
	var log struct {
		Deliveries []struct {
			Type     string `json:"alert_type"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"deliveries"`
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if getJSON(t, "http://"+p.addr+"/admin/alerts/deliveries", "pw", &log) != 200 {
			t.Fatal("delivery log")
		}
		if len(log.Deliveries) == 1 && log.Deliveries[0].Attempts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempts: %+v\n%s", log, p.stderr.String())
		}
	}
	if d := log.Deliveries[0]; d.Type != "device_offline" || d.Status != "pending" {
		t.Fatalf("while the receiver is down: %+v", d)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}

	var mu sync.Mutex
	var got []alert.Body
	ln, err := net.Listen("tcp", hook)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ts int64
		json.Unmarshal([]byte(r.Header.Get(alert.HeaderTimestamp)), &ts)
		if r.Header.Get(alert.HeaderSignature) != alert.Sign("k", ts, b) {
			t.Errorf("bad signature on %s", b)
		}
		var body alert.Body
		json.Unmarshal(b, &body)
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	received := func(n int) []alert.Body {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			g := append([]alert.Body(nil), got...)
			mu.Unlock()
			if len(g) >= n {
				return g
			}
		}
		t.Fatalf("fewer than %d alerts arrived", n)
		return nil
	}

	p = startWith(t, bin, dir, args, env...)
	if g := received(1); g[0].AlertType != "device_offline" || g[0].DeviceID != "e2e" || g[0].Text == "" {
		t.Fatalf("after the restart: %+v", g[0])
	}
	post(p)
	if g := received(2); g[1].AlertType != "device_online" || g[1].DeviceID != "e2e" {
		t.Fatalf("return: %+v", g[1])
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
