package otlp

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func secs(s float64) time.Duration   { return time.Duration(s * float64(time.Second)) }
func allowN(l *limiter, n int) (ok int) {
	for range n {
		if l.allow("t", "s") {
			ok++
		}
	}
	return
}

// The acceptance vector of detritus' rate limiter (spec §5.1).
func TestLimiterVector(t *testing.T) {
	c := newClock()
	l := newLimiter(1, 1, c.now)
	if !l.allow("t", "s") {
		t.Fatal("first")
	}
	c.add(secs(24)) // 0.4 token
	if l.allow("t", "s") {
		t.Fatal("after 24 s")
	}
	c.add(secs(42)) // 1.1
	if !l.allow("t", "s") {
		t.Fatal("after 66 s")
	}
	c.add(time.Hour) // capped at 1
	if allowN(l, 2) != 1 {
		t.Fatal("after an hour")
	}
	if !l.allow("t", "other-source") || !l.allow("other-token", "s") {
		t.Fatal("buckets are per token and source")
	}
	if newLimiter(100, 0, c.now).allow("t", "s") {
		t.Fatal("burst 0 must always reject")
	}
}

func TestLimiterConcurrentAndEviction(t *testing.T) {
	c := newClock()
	l := newLimiter(0, 2, c.now)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if l.allow("t", "s") {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 2 {
		t.Fatalf("%d allowed, want 2", ok.Load())
	}
	// Without refill an exhausted bucket must never be evicted (it would come back full).
	c.add(24 * time.Hour)
	l.allow("t", "x")
	if l.allow("t", "s") || l.size() != 2 {
		t.Fatalf("no-refill bucket evicted: size %d", l.size())
	}
	// With refill, buckets idle for a full refill time go away.
	r := newLimiter(60, 10, c.now) // 10 s to refill
	for i := range 1000 {
		r.allow("t", string(rune('a'+i%26))+string(rune(i)))
	}
	c.add(11 * time.Second)
	r.allow("t", "fresh")
	if r.size() != 1 {
		t.Fatalf("%d buckets after idle time, want 1", r.size())
	}
}

func TestPHCVectorAndVerifierCache(t *testing.T) {
	h, err := parsePHC("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BDY2yZMghVRfzM/ZnWJRYnbYdyXpxGgbqWqx3PdMCfg")
	if err != nil {
		t.Fatal(err)
	}
	if !h.verify("secret-token") || h.verify("secret-token ") {
		t.Fatal("detritus' legacy vector")
	}
	fresh, err := parsePHC(HashToken("  new secret  "))
	if err != nil || !fresh.verify("  new secret  ") || fresh.verify("new secret") {
		t.Fatal("HashToken output must verify exactly its input")
	}
	for _, bad := range []string{"plain", "$argon2d$v=19$m=8,t=1,p=1$c2FsdA$aGFzaGhhc2g", "$argon2id$v=16$m=8,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=8,t=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=8,t=1,p=1$!!$aGFzaA"} {
		if _, err := parsePHC(bad); err == nil {
			t.Errorf("parsePHC(%q) accepted", bad)
		}
	}
	tok := &Token{ID: "a", Project: "p", SourcePrefix: "p/", hash: h}
	v := NewVerifier([]*Token{tok})
	c := newClock()
	v.now = c.now
	// Count Argon2 runs through the cache's effect: a cached answer returns without the semaphore.
	if v.Verify("secret-token") != tok || v.Verify("wrong") != nil {
		t.Fatal("verify")
	}
	v.sem <- struct{}{}
	v.sem <- struct{}{} // Argon2 now blocks: only cached answers can return
	done := make(chan bool)
	go func() { done <- v.Verify("secret-token") == tok && v.Verify("wrong") == nil }()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("cached answers wrong")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cached token ran Argon2 again")
	}
	<-v.sem
	<-v.sem
	c.add(2 * time.Minute) // the negative entry expires; the positive one lasts
	if v.Verify("wrong") != nil || v.Verify("secret-token") != tok {
		t.Fatal("after expiry")
	}
}

func TestTokenFileLoading(t *testing.T) {
	ok := `[[token]]
id = "a"
secret = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BDY2yZMghVRfzM/ZnWJRYnbYdyXpxGgbqWqx3PdMCfg"
project = "tests"
source_prefix = "tests/allowed"

[rate_limit]
logs_burst = 7
`
	tf, err := ParseTokenFile([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if tf.RateLimit.LogsBurst != 7 || tf.RateLimit.LogsPerMinute != 1000 || tf.RateLimit.CrashesBurst != 5 {
		t.Fatalf("partial [rate_limit]: %+v", tf.RateLimit)
	}
	tok := tf.Tokens[0]
	if !tok.Permits("tests", "allowed-install") || tok.Permits("tests", "other") || tok.Permits("tests2", "allowed") {
		t.Fatal("source prefix rule")
	}
	for name, bad := range map[string]string{
		"empty":     "",
		"syntax":    "[[token]\n",
		"no secret": "[[token]]\nid = \"a\"\nproject = \"p\"\nsource_prefix = \"p/\"\n",
		"bad hash":  "[[token]]\nid = \"a\"\nsecret = \"x\"\nproject = \"p\"\nsource_prefix = \"p/\"\n",
	} {
		if _, err := ParseTokenFile([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadTokenFile("/nonexistent/tokens.toml"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestAnyValueJSON(t *testing.T) {
	kv := func(k string, v *commonpb.AnyValue) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: v} }
	s := func(x string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: x}}
	}
	nan := &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0}}
	nan.Value.(*commonpb.AnyValue_DoubleValue).DoubleValue = func() float64 { z := 0.0; return z / z }()
	got := string(appendKVs(nil, []*commonpb.KeyValue{
		kv("s", s("a\"b\\\n\x01\xff")), kv("b", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xde, 0xad}}}),
		kv("n", nan), kv("unset", &commonpb.AnyValue{}), kv("dup", s("1")), kv("dup", s("2")),
		kv("arr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{{}, s("x")}}}}),
		kv("kv", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{kv("i", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -3}})}}}}),
	}))
	want := `{"s":"a\"b\\\n\u0001\ufffd","b":"dead","n":null,"dup":"2","arr":[null,"x"],"kv":{"i":-3}}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

// Client-supplied install ids key the buckets: a stream of unique ones must not grow the limiter without bound,
// whether or not the buckets refill (per_minute = 0 never sweeps by idle time).
func TestLimiterBoundedByUniqueSources(t *testing.T) {
	for _, perMinute := range []float64{0, 1000} {
		c := newClock()
		l := newLimiter(perMinute, 5, c.now)
		for i := range 100_000 + maxBuckets {
			if !l.allow("t", "proj/install-"+strconv.Itoa(i)) {
				t.Fatalf("per_minute %v: fresh source %d refused", perMinute, i)
			}
			if i%1000 == 0 && l.size() > maxBuckets {
				t.Fatalf("per_minute %v: %d buckets after %d sources, bound %d", perMinute, l.size(), i+1, maxBuckets)
			}
		}
		if n := l.size(); n > maxBuckets {
			t.Fatalf("per_minute %v: %d buckets, bound %d", perMinute, n, maxBuckets)
		}
	}
	// A source in steady use is not the one evicted: its exhausted bucket stays exhausted.
	c := newClock()
	l := newLimiterSize(0, 1, c.now, 100)
	l.allow("t", "busy")
	for i := range 1000 {
		l.allow("t", strconv.Itoa(i))
		if l.allow("t", "busy") {
			t.Fatalf("busy source's exhausted bucket came back after %d other sources", i+1)
		}
	}
}

// Memory, not just the bucket count, stays flat: once the limiter is full, 200k more unique sources add no heap.
func TestLimiterHeapFlat(t *testing.T) {
	c := newClock()
	l := newLimiter(0, 5, c.now)
	fill := func(from, n int) {
		for i := from; i < from+n; i++ {
			l.allow("t", "proj/install-"+strconv.Itoa(i))
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	fill(0, 2*maxBuckets)
	before := heap()
	fill(2*maxBuckets, 200_000)
	after := heap()
	// Unbounded, 200k buckets would hold about 30 MB.
	if after > before && after-before > 8<<20 {
		t.Fatalf("heap grew by %d bytes over 200k unique sources", after-before)
	}
	runtime.KeepAlive(l)
}
