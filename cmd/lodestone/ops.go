package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
	"github.com/lodestone-fleet/lodestone/leader"
	"github.com/lodestone-fleet/lodestone/retention"
)

// opsStore is what alerts, retention and the Prometheus gauges need of the database; both backends provide it.
type opsStore interface {
	lodestone.AlertStore
	lodestone.AlertRuleStore
	lodestone.RetentionStore
	lodestone.FleetCounter
}

// retentionEvery is ferrite's retention period: hourly, first at start (here: when a replica takes the lead).
const retentionEvery = time.Hour

// opsServices builds the alert service and the retention purge, and the leader jobs that run them: the retention
// purge and the alert rules' evaluation and sender. ALERT_WEBHOOK_URL becomes the default rules. The alert watcher, which turns events into queued alerts, runs on every replica
// (alerts.Watch) and is started by serve.
func opsServices(db *openedStore, cfg Config, bus lodestone.EventBus, log *slog.Logger) (opsStore, *alert.Service,
	*retention.Service, []leader.Job, error) {
	st, ok := db.Store.(opsStore)
	if !ok {
		return nil, nil, nil, nil, fmt.Errorf("the %s store lacks alerts and retention", db.spec.dialect)
	}
	urls, err := alert.ParseURLs(cfg.AlertWebhookURL)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("ALERT_WEBHOOK_URL: %w", err)
	}
	minutes := cfg.AlertOfflineMinutes
	if cfg.OfflineAfter > 0 {
		minutes = max(1, int(cfg.OfflineAfter/time.Minute))
	}
	alerts := alert.New(alert.Config{URLs: urls, Secret: cfg.AlertWebhookSecret, OfflineMinutes: minutes,
		Backoff: cfg.AlertRetry, Every: min(5*time.Second, cfg.JobsInterval),
		Evaluate: min(30*time.Second, cfg.JobsInterval), Logger: log}, st, db, bus)
	purge := retention.New(st, cfg.RetentionDays, 0, log)
	audit := auditStore(db.Store)
	jobs := []leader.Job{{Name: "retention", Every: retentionEvery, Run: func(ctx context.Context) error {
		if purge.Days() == 0 {
			return nil
		}
		run, err := purge.Purge(ctx)
		return errors.Join(err, auditRetentionRun(lodestone.SystemContext(ctx, "retention"), audit, run))
	}}}
	if audit != nil && cfg.AuditRetentionDays > 0 {
		days := cfg.AuditRetentionDays
		jobs = append(jobs, leader.Job{Name: "audit-retention", Every: retentionEvery,
			Run: func(ctx context.Context) error {
				_, err := audit.PruneAudit(lodestone.SystemContext(ctx, "audit-retention"),
					time.Now().Add(-time.Duration(days)*24*time.Hour))
				return err
			}})
	}
	// Always run: rules made through the API need no ALERT_WEBHOOK_URL. Run loops until leadership ends; the
	// elector calls it again if it returns early.
	jobs = append(jobs, leader.Job{Name: "alerts", Every: 5 * time.Second, Run: alerts.Run})
	return st, alerts, purge, jobs, nil
}

// auditStore is the store's audit log, or nil for a backend without one.
func auditStore(s lodestone.Store) lodestone.AuditStore {
	a, _ := s.(lodestone.AuditStore)
	return a
}

// auditRetentionRun records a scheduled purge that deleted rows or failed, as lodestone's own action (ctx carries
// the system actor); an hourly run that found nothing to delete is not worth an entry.
func auditRetentionRun(ctx context.Context, a lodestone.AuditStore, run *lodestone.PurgeResult) error {
	if a == nil || run == nil {
		return nil
	}
	var n int64
	for _, d := range run.Deleted {
		n += d
	}
	if n == 0 && run.Error == "" {
		return nil
	}
	return lodestone.RecordAudit(ctx, a, "retention.run", lodestone.AuditRetention, "", run)
}
