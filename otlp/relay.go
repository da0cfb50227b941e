package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Relay feeds a replica's live log tails when replicas share one database. Writers announce each committed batch
// on the shared bus as an EventLogBatch (Deps.Batches); the relay of every replica, this one's included, reads
// the batch's records back from the store by id and publishes them to the local Fanout as EventLogs events, the
// shape a tail gets on a single server. The relay follows the bus only while the fan-out has subscribers: a
// replica nobody tails does no work for tails, and its event listener need not read events back at all.
type Relay struct {
	bus  lodestone.EventBus
	logs lodestone.LogScanner
	out  *Fanout
	log  *slog.Logger
	done chan struct{}

	mu     sync.Mutex
	ctx    context.Context // the relay's life, from Start
	cancel context.CancelFunc
	active bool // a bus subscription is running
	wg     sync.WaitGroup
}

// NewRelay returns a relay from bus to out that reads records from logs. log may be nil.
func NewRelay(bus lodestone.EventBus, logs lodestone.LogScanner, out *Fanout, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.Default()
	}
	return &Relay{bus: bus, logs: logs, out: out, log: log, done: make(chan struct{})}
}

// Start makes the relay follow the bus whenever the fan-out gets a subscriber, until ctx ends; Done is closed
// then. A tail's Subscribe returns only once the relay follows the bus, so every batch committed after a tail
// connects reaches it.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	r.out.setOnSubscribe(r.ensure)
	go func() {
		<-ctx.Done()
		r.out.setOnSubscribe(nil)
		r.wg.Wait()
		close(r.done)
	}()
	return r.ensure()
}

// Done is closed once the relay has stopped.
func (r *Relay) Done() <-chan struct{} { return r.done }

// ensure starts following the bus if the fan-out has subscribers and the relay does not follow it yet.
func (r *Relay) ensure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active || r.ctx == nil || r.ctx.Err() != nil || r.out.Subscribers() == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	events, err := r.bus.Subscribe(ctx, 0)
	if err != nil {
		cancel()
		return fmt.Errorf("otlp: relay subscribe: %w", err)
	}
	r.active, r.cancel = true, cancel
	r.wg.Add(1)
	go r.run(ctx, events)
	return nil
}

// idle stops following the bus when no tail is left; it reports whether it stopped.
func (r *Relay) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out.Subscribers() > 0 {
		return false
	}
	r.active = false
	r.cancel()
	return true
}

func (r *Relay) run(ctx context.Context, events <-chan lodestone.Event) {
	defer r.wg.Done()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	var last int64
	for {
	follow:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break follow
				}
				last = ev.ID
				if ev.Type != lodestone.EventLogBatch {
					continue
				}
				if err := r.relay(ctx, ev.Data); err != nil && ctx.Err() == nil {
					r.log.Warn("live log tail: cannot read a committed batch", "event_id", ev.ID, "err", err)
				}
			case <-check.C:
				if r.idle() {
					return
				}
			}
		}
		// The bus dropped the relay for falling behind, or is closing: resume after the last event seen, which
		// the bus replays while it still holds it.
		for {
			if ctx.Err() != nil {
				r.mu.Lock()
				r.active = false
				r.mu.Unlock()
				return
			}
			var err error
			if events, err = r.bus.Subscribe(ctx, last); err == nil {
				break
			}
			r.log.Warn("live log tail: cannot resubscribe to the event bus", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// relay reads the records a batch event names, in id order, and publishes them to the fan-out.
func (r *Relay) relay(ctx context.Context, data []byte) error {
	if r.out.Subscribers() == 0 {
		return nil
	}
	var b lodestone.LogBatch
	if err := json.Unmarshal(data, &b); err != nil || b.First <= 0 || b.Last < b.First {
		return errors.New("malformed log batch event")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs := make([]*lodestone.LogRecord, 0, min(b.Last-b.First+1, 1<<16))
	for after := b.First - 1; after < b.Last; {
		page, err := r.logs.ScanLogs(ctx, lodestone.LogScan{AfterID: after, Limit: int(min(b.Last-after,
			lodestone.MaxListLimit))})
		if err != nil {
			return err
		}
		for _, rec := range page {
			if rec.ID > b.Last {
				break
			}
			recs = append(recs, rec)
		}
		if len(page) == 0 {
			break // deleted by retention since
		}
		after = page[len(page)-1].ID
	}
	if len(recs) > 0 {
		publishLogs(r.out, recs, r.log)
	}
	return nil
}
