package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Signature headers. The signature is hex HMAC-SHA256 over "<timestamp>.<body>" with the configured secret, so a
// receiver can check both the sender and the freshness (and drop replays) the way Stripe and Slack signatures work.
const (
	HeaderSignature = "X-Lodestone-Signature" // "sha256=<hex>"
	HeaderTimestamp = "X-Lodestone-Timestamp" // Unix seconds of this attempt
	HeaderDelivery  = "X-Lodestone-Delivery"  // the delivery id, the same on every retry, for receivers to dedupe
)

// Sign returns the value of the signature header for body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(itoa(ts)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Service queues and sends alerts.
type Service struct {
	cfg     Config
	store   lodestone.AlertStore
	devices lodestone.DeviceService
	events  lodestone.EventBus
	wake    chan struct{}
	now     func() time.Time
}

// New returns the service. events may be nil (no device_online events, no Watch).
func New(cfg Config, store lodestone.AlertStore, devices lodestone.DeviceService, events lodestone.EventBus) *Service {
	cfg.defaults()
	return &Service{cfg: cfg, store: store, devices: devices, events: events, wake: make(chan struct{}, 1),
		now: time.Now}
}

// Enabled reports whether any webhook is configured.
func (s *Service) Enabled() bool { return len(s.cfg.URLs) > 0 }

// deliveries makes one delivery per webhook.
func (s *Service) deliveries(kind, device, key string, body []byte, at time.Time) []*lodestone.AlertDelivery {
	out := make([]*lodestone.AlertDelivery, 0, len(s.cfg.URLs))
	for _, u := range s.cfg.URLs {
		out = append(out, &lodestone.AlertDelivery{Kind: kind, DeviceID: device, URL: u, Body: body, DedupKey: key,
			CreatedAt: at})
	}
	return out
}

// Watch queues an alert for every fault, device_offline, ota_campaign_halted and crash_regression event until ctx ends. Run it on every replica: a
// delivery's key is the event's bus id, the same on every replica, so each event is queued once. Events published
// while no replica watches (all down) are not alerted.
func (s *Service) Watch(ctx context.Context) error {
	if s.events == nil || !s.Enabled() {
		return nil
	}
	var after int64
	for ctx.Err() == nil {
		ch, err := s.events.Subscribe(ctx, after)
		if err != nil {
			return fmt.Errorf("alert: subscribe to events: %w", err)
		}
		for e := range ch {
			after = e.ID
			if err := s.handle(ctx, e); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("queueing an alert failed", "event", e.Type, "device_id", e.DeviceID, "err", err)
			}
		}
		// The bus dropped this subscriber for lagging (or closed): resume after the last event handled.
	}
	return nil
}

func (s *Service) handle(ctx context.Context, e lodestone.Event) error {
	var ds []*lodestone.AlertDelivery
	key := "event:" + itoa(e.ID)
	at := e.Time
	if at.IsZero() {
		at = s.now()
	}
	switch e.Type {
	case lodestone.EventFault:
		var d struct {
			FaultType uint8  `json:"fault_type"`
			PC        string `json:"pc"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("fault event: %w", err)
		}
		pc, _ := strconv.ParseUint(d.PC, 0, 32)
		ds = s.deliveries(lodestone.AlertFault, e.DeviceID, key, FaultBody(e.DeviceID, d.FaultType, uint32(pc), at), at)
	case lodestone.EventDeviceOffline:
		lastSeen := at
		if dev, err := s.devices.FindDeviceByID(ctx, e.DeviceID); err == nil {
			lastSeen = dev.LastSeen
		}
		ds = s.deliveries(lodestone.AlertDeviceOffline, e.DeviceID, key,
			OfflineBody(e.DeviceID, lastSeen, s.cfg.OfflineMinutes, at), at)
	case lodestone.AlertCampaignHalt:
		var d struct {
			CampaignID int64  `json:"campaign_id"`
			Name       string `json:"name"`
			Reason     string `json:"reason"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("campaign event: %w", err)
		}
		ds = s.deliveries(lodestone.AlertCampaignHalt, "", key, CampaignHaltBody(d.CampaignID, d.Name, d.Reason, at), at)
	case lodestone.AlertRegression:
		var d struct {
			GroupID         int64  `json:"crash_group_id"`
			Title           string `json:"title"`
			FirmwareVersion string `json:"firmware_version"`
			ResolvedVersion string `json:"resolved_version"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("regression event: %w", err)
		}
		ds = s.deliveries(lodestone.AlertRegression, e.DeviceID, key,
			RegressionBody(e.DeviceID, d.GroupID, d.Title, d.FirmwareVersion, d.ResolvedVersion, at), at)
	default:
		return nil
	}
	n, err := s.store.EnqueueAlerts(ctx, ds)
	if n > 0 {
		s.Wake()
	}
	return err
}

// Wake makes a running sender look for due deliveries now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run is the leader's sender loop: every Every (or when woken) it queues alerts for devices back online and sends
// every due delivery. It returns when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if !s.Enabled() {
		return nil
	}
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("alert sender", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Tick does one round: returns of offline devices, then every due delivery.
func (s *Service) Tick(ctx context.Context) error {
	back, err := s.store.AlertsBackOnline(ctx, func(device string, offlineAt time.Time) []*lodestone.AlertDelivery {
		now := s.now()
		return s.deliveries(lodestone.AlertDeviceOnline, device, "online:"+device+":"+itoa(offlineAt.UnixMilli()),
			OnlineBody(device, offlineAt, now), now)
	})
	if err != nil {
		return err
	}
	for _, id := range back {
		if s.events != nil {
			d, _ := json.Marshal(map[string]string{"device_id": id})
			if err := s.events.Publish(ctx, lodestone.Event{Type: lodestone.EventDeviceOnline, DeviceID: id,
				Data: d}); err != nil {
				s.cfg.Logger.Warn("publishing device_online failed", "device_id", id, "err", err)
			}
		}
	}
	for ctx.Err() == nil {
		// The lease covers the whole batch sent one after another, so it cannot run out mid-batch.
		lease := time.Duration(s.cfg.Batch)*s.cfg.Timeout + time.Minute
		due, err := s.store.ClaimAlerts(ctx, s.now(), lease, s.cfg.Batch)
		if err != nil {
			return err
		}
		for _, d := range due {
			s.send(ctx, d)
		}
		if len(due) < s.cfg.Batch {
			return nil
		}
	}
	return nil
}

// send makes one attempt and records it.
func (s *Service) send(ctx context.Context, d *lodestone.AlertDelivery) {
	status, err := s.post(ctx, d)
	now := s.now()
	var next time.Time
	if err != nil {
		if d.Attempts+1 < s.cfg.MaxAttempts {
			next = now.Add(s.cfg.backoff(d.Attempts + 1))
		}
		s.cfg.Logger.Warn("alert delivery failed", "id", d.ID, "kind", d.Kind, "device_id", d.DeviceID,
			"webhook", RedactURL(d.URL), "attempt", d.Attempts+1, "status", status, "err", err, "retry_at", next)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	// Recorded even if ctx ended (shutdown): the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := s.store.FinishAlert(rctx, d.ID, err == nil, status, msg, now, next); ferr != nil {
		s.cfg.Logger.Error("recording an alert attempt failed", "id", d.ID, "err", ferr)
	}
}

func (s *Service) post(ctx context.Context, d *lodestone.AlertDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lodestone-alerts")
	req.Header.Set(HeaderDelivery, itoa(d.ID))
	if s.cfg.Secret != "" {
		ts := s.now().Unix()
		req.Header.Set(HeaderTimestamp, itoa(ts))
		req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, ts, d.Body))
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL, which may carry the webhook's token: say only what kind of failure it was.
		if ctx.Err() != nil {
			return 0, fmt.Errorf("no answer within %s", s.cfg.Timeout)
		}
		return 0, fmt.Errorf("request failed: %s", unwrapNet(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
