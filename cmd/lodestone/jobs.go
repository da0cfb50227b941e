package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/ingest"
	"github.com/lodestone-fleet/lodestone/leader"
)

// eventBus is the bus serve runs, closed at shutdown.
type eventBus interface {
	lodestone.EventBus
	Close() error
}

// replicaServices picks what depends on being one process or one of several: the event bus and the election of
// the replica that runs periodic jobs, and those jobs. On SQLite the process is alone: events stay in memory and it
// always leads. On PostgreSQL every replica shares events through LISTEN/NOTIFY and the jobs run on whichever
// replica holds an advisory lock.
func replicaServices(ctx context.Context, db *openedStore, cfg Config, log *slog.Logger) (eventBus, leader.Elector,
	[]leader.Job, error) {
	offlineAfter := time.Duration(cfg.AlertOfflineMinutes) * time.Minute
	if cfg.OfflineAfter > 0 {
		offlineAfter = cfg.OfflineAfter
	}
	if db.pg == nil {
		// Events nobody has subscribed to for a minute are not built (see BrokerConfig.Linger).
		bus := event.NewBroker(event.BrokerConfig{Linger: time.Minute})
		return bus, leader.NewSingle(log), []leader.Job{offlineJob(db, offlineAfter, cfg.JobsInterval, bus, log)}, nil
	}
	bus, err := event.OpenPG(ctx, db.pg.Pool(), event.PGConfig{Logger: log})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start the shared event bus: %w", err)
	}
	elector := leader.NewPG(db.pg.Pool(), "jobs", leader.Config{Retry: cfg.LeaderRetry, Logger: log})
	return bus, elector, []leader.Job{
		offlineJob(db, offlineAfter, cfg.JobsInterval, bus, log),
		trimEventsJob(bus, log),
	}, nil
}

// offlineJob marks devices offline once they have been silent for longer than after, and publishes a
// device_offline event for each.
func offlineJob(s lodestone.OfflineMarker, after, every time.Duration, events lodestone.EventPublisher,
	log *slog.Logger) leader.Job {
	return leader.Job{Name: "offline", Every: every, Run: func(ctx context.Context) error {
		ids, err := s.MarkOfflineDevices(ctx, time.Now().Add(-after))
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			log.Info("devices went offline", "count", len(ids))
		}
		for _, id := range ids {
			// The status change is stored; a lost notification is logged, never an error of the sweep.
			if err := events.Publish(ctx, ingest.DeviceOfflineEvent(id)); err != nil {
				log.Warn("publishing device_offline failed", "device_id", id, "err", err)
			}
		}
		return nil
	}}
}

// trimEventsJob bounds the shared event table: a day of events, and at most 100,000, is plenty for a subscriber
// that reconnects with Last-Event-ID.
func trimEventsJob(bus *event.PGBus, log *slog.Logger) leader.Job {
	return leader.Job{Name: "trim-events", Every: 10 * time.Minute, Run: func(ctx context.Context) error {
		n, err := bus.Trim(ctx, 24*time.Hour, 100_000)
		if n > 0 {
			log.Debug("trimmed the event table", "events", n)
		}
		return err
	}}
}

// committerSetter is a group-commit writer whose transactions in flight can be bounded while it runs: the telemetry
// writer (ingest.Writer) and the log writer (otlp.Server).
type committerSetter interface{ SetCommitters(n int) }

// committerSetters bounds several writers that commit to the same database alike.
type committerSetters []committerSetter

func (cs committerSetters) SetCommitters(n int) {
	for _, c := range cs {
		c.SetCommitters(n)
	}
}

// followReplicas, on PostgreSQL, gives the writer one committer while other replicas share the database and two
// while this one is alone: every replica's transactions in flight add up on the one server, and beyond a few they
// only split the work into smaller groups (bench/scale.sh: three replicas ingest 7–17% more with one committer
// each; one replica alone does better with two). It returns when ctx ends.
func followReplicas(ctx context.Context, b eventBus, w committerSetter, log *slog.Logger) {
	bus, ok := b.(*event.PGBus)
	if !ok {
		return // alone on SQLite
	}
	const every = 10 * time.Second
	t := time.NewTimer(time.Second)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(every)
		n, err := bus.Replicas(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot count the replicas sharing the database", "err", err)
			}
			continue
		}
		if n != last {
			committers := 2
			if n > 1 {
				committers = 1
			}
			w.SetCommitters(committers)
			log.Info("replicas sharing the database", "replicas", n, "committers", committers)
			last = n
		}
	}
}
