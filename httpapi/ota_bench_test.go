package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkOTAPoll measures the device poll route over keep-alive connections, with a target to offer.
//
//	go test ./httpapi -run '^$' -bench OTAPoll -benchtime 5s
func BenchmarkOTAPoll(b *testing.B) {
	e := newEnv(b, opts{apiKey: "k"})
	a := e.upload(image(1000), "2.0", "20")
	st, _, raw := e.do("POST", "/ota/targets", []byte(fmt.Sprintf(
		`{"device_id":"d","target_version":"2.0","firmware_id":%d}`, a.Artifact.ID)), true)
	if st != 200 {
		b.Fatalf("target: %d %s", st, raw)
	}
	url := e.srv.URL + "/ota/check/d?version=1.0&build_id=10"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("X-API-Key", "k")
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}

// BenchmarkFirmwareDownload runs N concurrent downloads of a 4 MiB image, each interrupted halfway and resumed
// with Range, and reports throughput and the peak heap: the heap must not grow with the number of downloads,
// since images stream from storage.
//
//	go test ./httpapi -run '^$' -bench FirmwareDownload -benchtime 3x
func BenchmarkFirmwareDownload(b *testing.B) {
	for _, n := range []int{50, 200} {
		b.Run(fmt.Sprintf("concurrent=%d", n), func(b *testing.B) {
			e := newEnv(b, opts{})
			img := image(4 << 20)
			a := e.upload(img, "2.0", "1")
			url := fmt.Sprintf("%s/ota/firmware/%d/download", e.srv.URL, a.Artifact.ID)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
			var peak atomic.Uint64
			stop := make(chan struct{})
			go func() {
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				}
			}()
			half := len(img) / 2
			fetch := func(rng string) int64 {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Range", rng)
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return 0
				}
				defer resp.Body.Close()
				k, _ := io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 206 {
					b.Errorf("status %d", resp.StatusCode)
				}
				return k
			}
			var bytes atomic.Int64
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						bytes.Add(fetch(fmt.Sprintf("bytes=0-%d", half-1)))
						bytes.Add(fetch(fmt.Sprintf("bytes=%d-", half)))
					}()
				}
				wg.Wait()
			}
			el := time.Since(start)
			close(stop)
			if want := int64(b.N * n * len(img)); bytes.Load() != want {
				b.Fatalf("downloaded %d bytes, want %d", bytes.Load(), want)
			}
			b.ReportMetric(float64(bytes.Load())/el.Seconds()/(1<<20), "MiB/s")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		})
	}
}
