package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A failing WAL checkpoint is not dropped: the background checkpointer logs it once (not on every tick), and
// the final checkpoint's failure is what Close returns.
func TestCheckpointErrorsLoggedAndReturned(t *testing.T) {
	boom := errors.New("injected checkpoint failure")
	calls := make(chan string, 100)
	defer func(f func(*sql.DB, string) error) { walCheckpoint = f }(walCheckpoint)
	walCheckpoint = func(_ *sql.DB, mode string) error {
		select {
		case calls <- mode:
		default:
		}
		return boom
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logs}, nil))
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for passive := 0; passive < 3; {
		select {
		case m := <-calls:
			if m == "PASSIVE" {
				passive++
			}
		case <-deadline:
			db.Close()
			t.Fatalf("the checkpointer ran %d times in 10 s", passive)
		}
	}
	if err := db.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v, want the final checkpoint's error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "injected checkpoint failure"); n != 1 {
		t.Fatalf("checkpoint failure logged %d times, want once:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
