package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// The real binary streams the events of what it ingests, and an open stream does not hold up SIGTERM.
func TestEventStreamOnTheBinary(t *testing.T) {
	bin := buildBinary(t)
	p := start(t, bin, t.TempDir(), "BASIC_AUTH_PASS=pw")
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/events/stream", nil)
	req.SetBasicAuth("admin", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	post, err := http.Post("http://"+p.addr+"/ingest/chunks", "application/octet-stream",
		bytes.NewReader(session("live", 7)))
	if err != nil || post.StatusCode != 200 {
		t.Fatalf("ingest: %v %v", err, post)
	}
	post.Body.Close()

	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var events []string
	for len(events) < 3 {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "event: ") {
				events = append(events, l[7:])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("events so far %v", events)
		}
	}
	if strings.Join(events, ",") != "metric,metric,heartbeat" {
		t.Fatalf("events %v", events)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second): // the shutdown timeout is 30 s: a stream holding it would show here
		t.Fatal("an open event stream held up shutdown")
	}
}

func TestOfflineJobPublishesDeviceOffline(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-time.Hour)
	db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "quiet", ReceivedAt: old,
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}, {DeviceID: "chatty", ReceivedAt: time.Now(),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}})
	bus := event.NewBroker(event.BrokerConfig{})
	sub, _ := bus.Subscribe(ctx, 0)
	job := offlineJob(db, 10*time.Minute, time.Minute, bus, slog.New(slog.DiscardHandler))
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub:
		if e.Type != lodestone.EventDeviceOffline || e.DeviceID != "quiet" || string(e.Data) != `{"device_id":"quiet"}` {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no device_offline event")
	}
	// A second sweep changes nothing and announces nothing: the next event is the sentinel.
	if err := job.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bus.Publish(ctx, lodestone.Event{Type: "sentinel"})
	if e := receive(t, sub, 10*time.Second, "the sentinel event"); e.Type != "sentinel" {
		t.Fatalf("second sweep published %s %s", e.Type, e.DeviceID)
	}
}
