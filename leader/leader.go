// Package leader picks the one replica that runs periodic jobs which must not run twice at once (offline
// detection, retention, event trimming, later rollout ticks): PG by a PostgreSQL advisory lock for replicas
// sharing a database, Single for a process that is alone (SQLite).
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Job is periodic work for the leader. Run is called once leadership is taken and then every Every; its context
// ends when leadership is lost or the process stops. Leadership can move while a job runs on a replica that has
// not yet noticed it lost its connection, so a job must tolerate, rarely, a second copy running for a moment.
type Job struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context) error
}

// Elector runs jobs while its process leads.
type Elector interface {
	// Run takes part in the election until ctx ends, running jobs whenever it leads. It returns once every job
	// has returned.
	Run(ctx context.Context, jobs ...Job) error
	// IsLeader reports whether jobs are running here now.
	IsLeader() bool
}

// Single is the elector of a process that is alone: it always leads.
type Single struct {
	log     *slog.Logger
	leading atomic.Bool
}

var _ Elector = (*Single)(nil)

// NewSingle returns an elector that leads as soon as Run is called.
func NewSingle(log *slog.Logger) *Single {
	if log == nil {
		log = slog.Default()
	}
	return &Single{log: log}
}

// Run runs jobs until ctx ends.
func (s *Single) Run(ctx context.Context, jobs ...Job) error {
	s.leading.Store(true)
	runJobs(ctx, jobs, s.log)
	s.leading.Store(false)
	return nil
}

// IsLeader implements Elector.
func (s *Single) IsLeader() bool { return s.leading.Load() }

// runJobs runs every job on its own schedule until ctx ends and returns when all have returned.
func runJobs(ctx context.Context, jobs []Job, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { runJob(ctx, j, log) })
	}
	wg.Wait()
}

func runJob(ctx context.Context, j Job, log *slog.Logger) {
	every := j.Every
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := safeRun(ctx, j); err != nil && ctx.Err() == nil {
			log.Error("periodic job failed", "job", j.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// safeRun turns a panic into an error, so one broken job neither stops the others nor the process.
func safeRun(ctx context.Context, j Job) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return j.Run(ctx)
}
