package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Report is the outcome of one measurement.
type Report struct {
	Name           string        `json:"name"`
	Requests       int64         `json:"requests"`
	Chunks         int64         `json:"chunks"`
	Failed         int64         `json:"failed_requests"`
	Elapsed        time.Duration `json:"elapsed_ns"`
	ChunksPerSec   float64       `json:"chunks_per_sec"`
	RequestsPerSec float64       `json:"requests_per_sec"`
	P50            time.Duration `json:"p50_ns,omitempty"`
	P90            time.Duration `json:"p90_ns,omitempty"`
	P99            time.Duration `json:"p99_ns,omitempty"`
	Max            time.Duration `json:"max_ns,omitempty"`
}

func (r *Report) finish(lat []time.Duration) {
	secs := r.Elapsed.Seconds()
	if secs > 0 {
		r.ChunksPerSec = float64(r.Chunks) / secs
		r.RequestsPerSec = float64(r.Requests) / secs
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
}

// HTTP posts bodies from concurrency keep-alive clients for duration (or until maxRequests, if > 0). Clients are
// spread evenly over urls, so several replicas share the load. Only 2xx answers count as delivered; anything else
// is a failed request.
func HTTP(ctx context.Context, urls []string, apiKey string, bodies []Body, concurrency int, duration time.Duration,
	maxRequests int64) (Report, error) {
	if len(bodies) == 0 || concurrency <= 0 || len(urls) == 0 {
		return Report{}, fmt.Errorf("loadgen: need bodies, a URL and at least one client")
	}
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var next, sent, chunks, failed atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		url := urls[w%len(urls)]
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if maxRequests > 0 && i >= maxRequests {
					return
				}
				b := bodies[int(i)%len(bodies)]
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b.Data))
				req.Header.Set("Content-Type", "application/octet-stream")
				if apiKey != "" {
					req.Header.Set("X-API-Key", apiKey)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lats[w] = append(lats[w], time.Since(t0))
				if resp.StatusCode/100 != 2 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("HTTP %d", resp.StatusCode))
					continue
				}
				sent.Add(1)
				chunks.Add(int64(b.Chunks))
			}
		}()
	}
	wg.Wait()
	r := Report{Name: "end-to-end HTTP", Requests: sent.Load(), Chunks: chunks.Load(), Failed: failed.Load(),
		Elapsed: time.Since(start)}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	r.finish(all)
	if r.Failed > 0 {
		return r, fmt.Errorf("loadgen: %d request(s) failed, first: %v", r.Failed, firstErr.Load())
	}
	return r, nil
}

// Parsed is one body turned into the records the server would store.
type Parsed struct {
	Batches []*lodestone.DeviceBatch
	Chunks  int
}

// Store writes the same records straight into a store, groupSize requests per transaction, for duration: the
// ceiling that HTTP, decoding and attribution are measured against.
func Store(ctx context.Context, w lodestone.TelemetryWriter, parsed []Parsed, groupSize int,
	duration time.Duration) (Report, error) {
	if len(parsed) == 0 || groupSize <= 0 {
		return Report{}, fmt.Errorf("loadgen: need parsed bodies and a group size")
	}
	r := Report{Name: "raw store"}
	deadline := time.Now().Add(duration)
	start := time.Now()
	var group []*lodestone.DeviceBatch
	for i := 0; time.Now().Before(deadline); {
		group = group[:0]
		var chunks int
		for range groupSize {
			p := parsed[i%len(parsed)]
			i++
			group = append(group, p.Batches...)
			chunks += p.Chunks
		}
		if err := w.WriteTelemetry(ctx, group); err != nil {
			return r, fmt.Errorf("loadgen: store write: %w", err)
		}
		r.Requests += int64(groupSize)
		r.Chunks += int64(chunks)
	}
	r.Elapsed = time.Since(start)
	r.finish(nil)
	return r, nil
}
