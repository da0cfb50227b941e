package lograte_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/lograte"
)

func TestOneLinePerInterval(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := lograte.Limiter{Every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	for i := range 50 {
		l.Log(log, slog.LevelWarn, t0.Add(time.Duration(i)*100*time.Millisecond), "refused", "ip", "192.0.2.1")
	}
	l.Log(log, slog.LevelWarn, t0.Add(time.Minute), "refused", "ip", "192.0.2.1")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") ||
		!strings.Contains(lines[0], "suppressed_since_last=0") || !strings.Contains(lines[1], "suppressed_since_last=49") {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

func TestConcurrentCallersCountEveryLine(t *testing.T) {
	l := lograte.Limiter{Every: time.Hour}
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow(now); ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok, n := l.Allow(now.Add(2 * time.Hour)); passed != 1 || !ok || n != 99 {
		t.Fatalf("passed %d, then ok=%v with %d left out; want 1, then true with 99", passed, ok, n)
	}
}

func TestZeroValueLetsEveryLineThrough(t *testing.T) {
	var l lograte.Limiter
	now := time.Now()
	for i := range 3 {
		if ok, _ := l.Allow(now); !ok {
			t.Fatalf("line %d held back by a zero Limiter", i)
		}
	}
}
