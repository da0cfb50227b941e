package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// BenchmarkDDIPoll measures DDI polls of 1,000 controllers (a gateway token, keep-alive), each with a deployment
// on offer, after each has polled once; a poll reconciles the action with the target, reads the attributes, and
// writes the device's contact at most every 30 s.
//
//	go test ./httpapi -run '^$' -bench DDIPoll -benchtime 3s
func BenchmarkDDIPoll(b *testing.B) {
	srv, _, _, _, _ := newDDIServer(b, httpapi.DDIConfig{GatewayToken: "bench-gateway-token"}, false)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	send := func(method, path string, body []byte, hdr ...string) []byte {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.SetBasicAuth("admin", adminPass)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return raw
	}
	send("POST", "/ota/firmware", []byte("bench image"), "X-Firmware-Version", "2.0")
	const devices = 1000
	for i := range devices {
		send("POST", "/ota/targets", []byte(fmt.Sprintf(`{"device_id":"dev-%d","target_version":"2.0",
			"firmware_id":1}`, i)), "Content-Type", "application/json")
	}
	poll := func(i int64) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/DEFAULT/controller/v1/dev-%d", srv.URL, i%devices), nil)
		req.Header.Set("Authorization", "GatewayToken bench-gateway-token")
		resp, err := c.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(raw, []byte("deploymentBase")) {
			b.Errorf("status %d: %s", resp.StatusCode, raw)
		}
	}
	for i := range int64(devices) {
		poll(i) // each controller's first poll creates its device and its action: the steady state is measured
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			poll(next.Add(1))
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "polls/s")
}
