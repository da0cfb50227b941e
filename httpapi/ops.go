package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
)

// Retention is the purge of old telemetry behind /admin/retention (package retention).
type Retention interface {
	Days() int
	Purge(ctx context.Context) (*lodestone.PurgeResult, error)
	LastRun(ctx context.Context) (*lodestone.PurgeResult, error)
}

func (s *Server) routesOps() {
	s.handle("GET /metrics/prometheus", s.cfg.MetricsAccess(), s.prometheusMetrics)
	// ferrite lets any user read the retention page; here it is admin-only like the rest of /admin.
	s.handle("GET /admin/retention", AccessAdmin, s.getRetention)
	s.handle("POST /admin/retention", AccessAdmin, s.runRetention)
	s.handle("GET /admin/alerts/deliveries", AccessAdmin, s.listAlertDeliveries)
	s.routesAlertRules()
}

type purgeJSON struct {
	Cutoff   string           `json:"cutoff"`
	Started  string           `json:"started_at"`
	Finished string           `json:"finished_at"`
	Deleted  map[string]int64 `json:"deleted"`
	Error    string           `json:"error,omitempty"`
}

// retentionBody is ferrite's shape ({"retention_days","enabled","counts"}) plus the last run on any replica.
func (s *Server) retentionBody(ctx context.Context, last *lodestone.PurgeResult) (map[string]any, error) {
	days := s.deps.Retention.Days()
	body := map[string]any{"retention_days": days, "enabled": days > 0, "last_run": nil}
	if s.deps.Counts != nil {
		c, err := s.deps.Counts.FleetCounts(ctx)
		if err != nil {
			return nil, err
		}
		body["counts"] = map[string]int64{"faults": c.Faults, "metrics": c.Metrics, "reboots": c.Reboots}
	}
	if last == nil {
		var err error
		last, err = s.deps.Retention.LastRun(ctx)
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return nil, err
		}
	}
	if last != nil {
		body["last_run"] = purgeJSON{Cutoff: ts(last.Cutoff), Started: ts(last.Started), Finished: ts(last.Finished),
			Deleted: last.Deleted, Error: last.Error}
	}
	return body, nil
}

func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Retention == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "retention is not wired on this server")
	}
	body, err := s.retentionBody(r.Context(), nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// runRetention purges now, on this replica, while the caller waits. A leader's scheduled run at the same moment
// is harmless: both delete the same old rows in small batches.
func (s *Server) runRetention(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Retention == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "retention is not wired on this server")
	}
	// Recorded before the purge, so no row goes unrecorded even when the purge fails part-way.
	if err := s.audit(r.Context(), "retention.run", lodestone.AuditRetention, "",
		map[string]int{"retention_days": s.deps.Retention.Days()}); err != nil {
		return err
	}
	run, err := s.deps.Retention.Purge(r.Context())
	if err != nil {
		return err
	}
	body, err := s.retentionBody(r.Context(), run)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type deliveryJSON struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"alert_type"`
	DeviceID    string          `json:"device_id"`
	Webhook     string          `json:"webhook"` // scheme and host only: the path of a Slack or Discord URL is its key
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	LastStatus  int             `json:"last_status"`
	LastError   string          `json:"last_error"`
	CreatedAt   string          `json:"created_at"`
	NextAttempt *string         `json:"next_attempt_at"`
	DeliveredAt *string         `json:"delivered_at"`
	Body        json.RawMessage `json:"body"`
}

func (s *Server) listAlertDeliveries(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Alerts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "alerts are not wired on this server")
	}
	q := r.URL.Query()
	f := lodestone.AlertFilter{Status: q.Get("status")}
	switch f.Status {
	case "", lodestone.DeliveryPending, lodestone.DeliveryDelivered, lodestone.DeliveryFailed:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be pending, delivered or failed, got %q", f.Status)
	}
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return err
	}
	ds, err := s.deps.Alerts.FindAlertDeliveries(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]deliveryJSON, 0, len(ds))
	for _, d := range ds {
		j := deliveryJSON{ID: d.ID, Kind: d.Kind, DeviceID: d.DeviceID, Webhook: alert.RedactURL(d.URL),
			Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError,
			CreatedAt: ts(d.CreatedAt), Body: json.RawMessage(d.Body)}
		if d.Status == lodestone.DeliveryPending {
			n := ts(d.NextAttempt)
			j.NextAttempt = &n
		}
		if d.DeliveredAt != nil {
			v := ts(*d.DeliveredAt)
			j.DeliveredAt = &v
		}
		if !json.Valid(j.Body) {
			j.Body = json.RawMessage("null")
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}
