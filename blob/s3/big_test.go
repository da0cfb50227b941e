package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/blob/s3"
	"github.com/lodestone-fleet/lodestone/blob/s3/s3test"
)

// A 1 GiB blob streams in and out: the heap stays within a few parts while it goes through the real gateway.
// It moves 1 GiB three times on disk (upload, server-side copy, download), so it runs only when asked.
func TestBigBlobStreams(t *testing.T) {
	if os.Getenv("LODESTONE_TEST_BIG") == "" {
		t.Skip("set LODESTONE_TEST_BIG=1 to stream a 1 GiB blob through the S3 gateway")
	}
	const size = 1 << 30
	srv := s3test.Start(t)
	cfg := config(srv)
	cfg.PartSize = 0 // the default, 16 MiB
	s := open(t, cfg)
	ctx := t.Context()

	peak := watchHeap()
	in := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{'l', 'o', 'd', 'e'}), size), in)
	start := time.Now()
	ref, existed, err := s.Put(ctx, src, 0)
	if err != nil || existed {
		t.Fatalf("Put = %v, existed %v", err, existed)
	}
	putTime := time.Since(start)
	want := hex.EncodeToString(in.Sum(nil))
	if ref.SHA256 != want || ref.Size != size {
		t.Fatalf("ref = %+v, want %s and %d bytes", ref, want, size)
	}

	start = time.Now()
	b, err := s.Open(ctx, ref.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	out := sha256.New()
	n, err := io.Copy(out, b)
	b.Close()
	if err != nil || n != size || hex.EncodeToString(out.Sum(nil)) != want {
		t.Fatalf("read back %d bytes (%v) hashing to %x, want %d bytes hashing to %s", n, err, out.Sum(nil), size, want)
	}
	openTime := time.Since(start)

	heap := peak()
	t.Logf("1 GiB: Put %v (%.0f MB/s), Open+read %v (%.0f MB/s), peak heap in use %d MiB",
		putTime.Round(time.Millisecond), size/putTime.Seconds()/1e6, openTime.Round(time.Millisecond),
		size/openTime.Seconds()/1e6, heap>>20)
	if heap > 128<<20 {
		t.Fatalf("peak heap in use %d MiB while streaming 1 GiB: the blob is being buffered", heap>>20)
	}
}

// watchHeap samples the heap in use until the returned function is called, which returns the largest sample.
func watchHeap() func() uint64 {
	runtime.GC()
	var (
		mu   sync.Mutex
		max  uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		max = maxOf(max, m.HeapInuse)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return max
	}
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

const benchSize = 64 << 20

// stores are the backends the benchmarks compare: the local disk and S3 through the gateway on loopback.
type namedStore struct {
	name string
	lodestone.BlobStore
}

func stores(b *testing.B) []namedStore {
	d, err := disk.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv := s3test.Start(b)
	st, err := s3.Open(b.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey, Bucket: srv.Bucket})
	if err != nil {
		b.Fatal(err)
	}
	return []namedStore{{"disk", d}, {"s3", st}}
}

func benchData() []byte {
	data := make([]byte, benchSize)
	rand.NewChaCha8([32]byte{'b'}).Read(data)
	return data
}

// BenchmarkPut stores a new 64 MiB blob per iteration (its first bytes are the iteration number, so nothing
// deduplicates).
func BenchmarkPut(b *testing.B) {
	data := benchData()
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(data, uint64(i)^uint64(time.Now().UnixNano()))
				if _, existed, err := s.Put(b.Context(), bytes.NewReader(data), 0); err != nil || existed {
					b.Fatalf("Put = %v, existed %v", err, existed)
				}
			}
		})
	}
}

// BenchmarkOpen reads a 64 MiB blob from start to end per iteration.
func BenchmarkOpen(b *testing.B) {
	data := benchData()
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			ref, _, err := s.Put(b.Context(), bytes.NewReader(data), 0)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchSize)
			for b.Loop() {
				blob, err := s.Open(b.Context(), ref.SHA256)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, blob); err != nil || n != benchSize {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				blob.Close()
			}
		})
	}
}
