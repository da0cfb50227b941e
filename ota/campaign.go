package ota

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// EventCampaignHalted is published when a campaign's health gate or failure threshold stops it.
const EventCampaignHalted = "ota_campaign_halted"

// Campaigns runs rollouts. Tick advances every active campaign; the caller runs it periodically on one replica
// (under leader election when there are several).
type Campaigns struct {
	svc *Service

	mu   sync.Mutex
	seen map[int64]campaignMark // what each active campaign looked like after the last tick (events.go)
}

// NewCampaigns returns the campaign runner of svc.
func NewCampaigns(svc *Service) *Campaigns { return &Campaigns{svc: svc} }

// CampaignSpec is a campaign to create: ferrite's fields plus lodestone's waves, gate and timeouts.
type CampaignSpec struct {
	Name             string
	FirmwareID       int64
	TargetVersion    string
	Strategy         string
	TargetGroupID    *int64
	TargetTags       *string
	RolloutPercent   *int64
	FailureThreshold *float64
	DeviceIDs        []string // explicit list
	FromVersion      string   // only devices running this firmware version
	Waves            []int
	SoakTime         time.Duration
	HealthRatio      *float64
	MinDeviceHours   float64
	OfferTimeout     time.Duration
	InstallTimeout   time.Duration
}

// Defaults for campaign fields left out.
const (
	DefaultHealthRatio    = 2.0
	DefaultOfferTimeout   = 7 * 24 * time.Hour
	DefaultInstallTimeout = 24 * time.Hour
	// minEvents is the fewest faults (or unexpected reboots) on the new firmware that can halt a campaign, so one
	// crash on a handful of canaries does not.
	minEvents = 2
)

// Create validates spec, picks its devices and stores the campaign. It returns the campaign and its device count.
func (c *Campaigns) Create(ctx context.Context, spec CampaignSpec) (*lodestone.Campaign, int, error) {
	s := c.svc
	if strings.TrimSpace(spec.Name) == "" {
		return nil, 0, lodestone.Errorf(lodestone.EINVALID, "name is required")
	}
	if spec.Strategy == "" {
		spec.Strategy = "immediate"
	}
	switch spec.Strategy {
	case "immediate", "canary", "scheduled":
	default:
		return nil, 0, lodestone.Errorf(lodestone.EINVALID,
			"invalid strategy '%s', must be one of: immediate, canary, scheduled", spec.Strategy)
	}
	pct := int64(100)
	if spec.RolloutPercent != nil {
		pct = *spec.RolloutPercent
	}
	if pct < 1 || pct > 100 {
		return nil, 0, lodestone.Errorf(lodestone.EINVALID, "rollout_percent must be 1-100")
	}
	waves := spec.Waves
	if len(waves) == 0 {
		waves = []int{100}
		if spec.Strategy == "canary" && pct < 100 {
			waves = []int{int(pct), 100}
		}
	}
	if !validWaves(waves) {
		return nil, 0, lodestone.Errorf(lodestone.EINVALID,
			"waves must be 1-20 strictly increasing cumulative percentages ending at 100")
	}
	fw, err := s.store.FindFirmwareByID(ctx, spec.FirmwareID)
	if err != nil {
		return nil, 0, err
	}
	if spec.TargetVersion == "" {
		spec.TargetVersion = fw.Version
	}
	camp := &lodestone.Campaign{Name: spec.Name, FirmwareID: fw.ID, TargetVersion: spec.TargetVersion,
		Strategy: spec.Strategy, TargetGroupID: spec.TargetGroupID, TargetTags: spec.TargetTags,
		RolloutPercent: pct, FailureThreshold: 5,
		Waves: waves, SoakTime: spec.SoakTime, HealthRatio: DefaultHealthRatio, MinDeviceHours: spec.MinDeviceHours,
		OfferTimeout: spec.OfferTimeout, InstallTimeout: spec.InstallTimeout}
	if spec.FailureThreshold != nil {
		camp.FailureThreshold = *spec.FailureThreshold
	}
	if spec.HealthRatio != nil {
		camp.HealthRatio = *spec.HealthRatio
	}
	if camp.OfferTimeout <= 0 {
		camp.OfferTimeout = DefaultOfferTimeout
	}
	if camp.InstallTimeout <= 0 {
		camp.InstallTimeout = DefaultInstallTimeout
	}
	if camp.SoakTime < 0 || camp.HealthRatio < 0 || camp.FailureThreshold < 0 || camp.MinDeviceHours < 0 {
		return nil, 0, lodestone.Errorf(lodestone.EINVALID, "soak, ratios and thresholds must not be negative")
	}
	ids, err := c.selectDevices(ctx, spec)
	if err != nil {
		return nil, 0, err
	}
	now := s.now().UTC()
	camp.CreatedAt, camp.UpdatedAt = now, now
	if err := s.store.CreateCampaign(ctx, camp, ids); err != nil {
		return nil, 0, err
	}
	n, err := s.store.CountCampaignDevices(ctx, camp.ID)
	return camp, n.Total(), err
}

// validWaves accepts 1-20 strictly increasing percentages ending at 100.
func validWaves(w []int) bool {
	if len(w) == 0 || len(w) > 20 || w[len(w)-1] != 100 || w[0] < 1 {
		return false
	}
	for i := 1; i < len(w); i++ {
		if w[i] <= w[i-1] {
			return false
		}
	}
	return true
}

// selectDevices lists the campaign's devices: the given ids, else the members of the target group (or every known
// device without one), narrowed by tags and the version they run. The list is taken now: devices that join the
// group later are not added, as in ferrite.
func (c *Campaigns) selectDevices(ctx context.Context, spec CampaignSpec) ([]string, error) {
	if len(spec.DeviceIDs) > 0 {
		if spec.TargetTags != nil || spec.FromVersion != "" || spec.TargetGroupID != nil {
			return nil, lodestone.Errorf(lodestone.EINVALID,
				"device_ids cannot be combined with target_group_id, target_tags or from_version")
		}
		return spec.DeviceIDs, nil
	}
	f := lodestone.DeviceFilter{Limit: lodestone.MaxListLimit, Sort: lodestone.SortID, Ascending: true}
	if spec.TargetGroupID != nil {
		groups, ok := c.svc.devices.(lodestone.GroupService)
		if !ok {
			return nil, lodestone.Errorf(lodestone.EINVALID, "target_group_id: this server keeps no device groups")
		}
		if _, err := groups.FindGroup(ctx, *spec.TargetGroupID); err != nil {
			if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
				return nil, lodestone.Errorf(lodestone.ENOTFOUND, "target_group_id: group %d not found",
					*spec.TargetGroupID)
			}
			return nil, err
		}
		f.GroupID = *spec.TargetGroupID
	}
	var tags []string
	if spec.TargetTags != nil {
		tags = lodestone.SplitTags(*spec.TargetTags)
	}
	var ids []string
	for ; ; f.Offset += lodestone.MaxListLimit {
		page, err := c.svc.devices.FindDevices(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			if spec.FromVersion != "" && d.FirmwareVersion != spec.FromVersion {
				continue
			}
			if len(tags) > 0 && (d.Tags == nil || !hasAnyTag(lodestone.SplitTags(*d.Tags), tags)) {
				continue
			}
			ids = append(ids, d.DeviceID)
		}
		if len(page) < lodestone.MaxListLimit {
			return ids, nil
		}
	}
}

func hasAnyTag(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// Activate starts a created campaign or resumes a paused or halted one; a campaign that has offered nothing yet
// offers its first wave at once. It returns how many targets were set.
func (c *Campaigns) Activate(ctx context.Context, id int64) (int, error) {
	ctx = lodestone.WithAudit(ctx, "campaign.activate")
	now := c.svc.now().UTC()
	camp, err := c.svc.store.SetCampaignStatus(ctx, id, []string{lodestone.CampaignCreated,
		lodestone.CampaignPaused, lodestone.CampaignHalted}, lodestone.CampaignActive, "", now)
	if err != nil {
		return 0, err
	}
	defer c.changed(ctx, id, "activate")
	if camp.Wave >= 0 {
		return 0, nil
	}
	return c.offer(ctx, camp, 0, now)
}

// Pause stops an active campaign from advancing; devices already offered keep their targets.
func (c *Campaigns) Pause(ctx context.Context, id int64) error {
	ctx = lodestone.WithAudit(ctx, "campaign.pause")
	_, err := c.svc.store.SetCampaignStatus(ctx, id, []string{lodestone.CampaignActive}, lodestone.CampaignPaused, "",
		c.svc.now().UTC())
	if err == nil {
		c.changed(ctx, id, "pause")
	}
	return err
}

// Abort ends a campaign: devices not yet installed get their previous targets back; installed ones keep theirs.
func (c *Campaigns) Abort(ctx context.Context, id int64) (int, error) {
	ctx = lodestone.WithAudit(ctx, "campaign.abort")
	n, err := c.svc.store.EndCampaign(ctx, id, []string{lodestone.CampaignCreated, lodestone.CampaignActive,
		lodestone.CampaignPaused, lodestone.CampaignHalted}, lodestone.CampaignAborted, false, c.svc.now().UTC())
	if err == nil {
		c.changed(ctx, id, "abort")
	}
	return n, err
}

// Rollback ends a campaign and gives every device it offered firmware to its previous target back. Devices
// outside the campaign, and targets changed since by someone else, are not touched.
func (c *Campaigns) Rollback(ctx context.Context, id int64) (int, error) {
	ctx = lodestone.WithAudit(ctx, "campaign.rollback")
	n, err := c.svc.store.EndCampaign(ctx, id, []string{lodestone.CampaignActive, lodestone.CampaignPaused,
		lodestone.CampaignHalted, lodestone.CampaignCompleted}, lodestone.CampaignRolledBack, true, c.svc.now().UTC())
	if err == nil {
		c.changed(ctx, id, "rollback")
	}
	return n, err
}

// offer offers wave w: enough pending devices that the offered share reaches the wave's percentage.
func (c *Campaigns) offer(ctx context.Context, camp *lodestone.Campaign, w int, now time.Time) (int, error) {
	counts, err := c.svc.store.CountCampaignDevices(ctx, camp.ID)
	if err != nil {
		return 0, err
	}
	total := counts.Total()
	want := int(math.Ceil(float64(total) * float64(camp.Waves[w]) / 100))
	n := max(want-(total-counts.Pending), 0)
	if w == 0 && total > 0 {
		n = max(n, 1) // a canary is at least one device
	}
	return c.svc.store.OfferWave(ctx, camp.ID, w, n, now)
}

// Tick advances every active campaign once: it times out stalled devices, checks the failure threshold, and when
// the current wave has soaked and settled, runs the health gate and offers the next wave or completes the
// campaign. It is safe to run on one replica at a time (put it under leader election); the state it works from
// is all in the database, so a restart resumes where it stopped.
func (c *Campaigns) Tick(ctx context.Context) error {
	camps, err := c.svc.store.FindCampaigns(ctx, lodestone.CampaignActive)
	if err != nil {
		return err
	}
	var errs []error
	for _, camp := range camps {
		if err := c.step(ctx, camp); err != nil {
			errs = append(errs, fmt.Errorf("campaign %d: %w", camp.ID, err))
		}
		c.noticeChange(ctx, camp.ID)
	}
	return errors.Join(errs...)
}

func (c *Campaigns) step(ctx context.Context, camp *lodestone.Campaign) error {
	s := c.svc
	now := s.now().UTC()
	if _, err := s.store.ExpireCampaignDevices(ctx, camp.ID, now.Add(-camp.OfferTimeout),
		now.Add(-camp.InstallTimeout), now); err != nil {
		return err
	}
	if camp.Wave < 0 {
		_, err := c.offer(ctx, camp, 0, now)
		return err
	}
	counts, err := s.store.CountCampaignDevices(ctx, camp.ID)
	if err != nil {
		return err
	}
	offered := counts.Total() - counts.Pending
	if offered > 0 && float64(counts.Failed)*100/float64(offered) > camp.FailureThreshold {
		return c.halt(ctx, camp, fmt.Sprintf("%d of %d offered devices failed to install (threshold %.1f%%)",
			counts.Failed, offered, camp.FailureThreshold))
	}
	if counts.Offered+counts.Downloading > 0 || camp.WaveStartedAt == nil ||
		now.Before(camp.WaveStartedAt.Add(camp.SoakTime)) {
		return nil // the wave is still settling or soaking
	}
	if counts.Pending == 0 {
		// Everyone has had the update; with no devices left on the old firmware there is nothing to gate on.
		_, err := s.store.SetCampaignStatus(ctx, camp.ID, []string{lodestone.CampaignActive},
			lodestone.CampaignCompleted, "", now)
		return err
	}
	if camp.HealthRatio > 0 && camp.StartedAt != nil {
		h, err := s.store.CampaignHealth(ctx, camp.ID, *camp.StartedAt, now)
		if err != nil {
			return err
		}
		if h.NewHours < camp.MinDeviceHours {
			return nil // not enough evidence yet
		}
		if reason, bad := Unhealthy(h, camp.HealthRatio); bad {
			return c.halt(ctx, camp, reason)
		}
	}
	if camp.Wave+1 >= len(camp.Waves) {
		return nil
	}
	n, err := c.offer(ctx, camp, camp.Wave+1, now)
	if err == nil {
		s.log.Info("campaign wave offered", "campaign", camp.ID, "wave", camp.Wave+1, "devices", n)
	}
	return err
}

// Unhealthy compares fault and unexpected-reboot rates per device-hour of devices on the new firmware with those
// still on the old one. A rate is bad when it is above ratio × the old rate and the excess is not chance: under
// the old rate, seeing that many events on the new firmware's device-hours must have a Poisson probability below
// significance, and there must be at least minEvents of them. When the old devices had none, their rate is taken
// as one event over their hours (the most that could go unnoticed).
func Unhealthy(h lodestone.CampaignHealth, ratio float64) (string, bool) {
	if h.NewHours <= 0 || h.OldHours <= 0 {
		return "", false // no baseline to compare with
	}
	check := func(what string, newN, oldN int) (string, bool) {
		if newN < minEvents {
			return "", false
		}
		newRate := float64(newN) / h.NewHours
		oldRate := float64(max(oldN, 1)) / h.OldHours
		if newRate <= ratio*oldRate {
			return "", false
		}
		p := poissonTail(newN, oldRate*h.NewHours)
		if p >= significance {
			return "", false
		}
		return fmt.Sprintf("%s rate on the new firmware %.3f per device-hour (%d in %.1f h) is over %.1f× the old "+
			"firmware's %.3f (%d in %.1f h); p=%.2g", what, newRate, newN, h.NewHours, ratio, oldRate, oldN,
			h.OldHours, p), true
	}
	if r, bad := check("crash", h.NewFaults, h.OldFaults); bad {
		return r, true
	}
	return check("unexpected reboot", h.NewReboots, h.OldReboots)
}

// significance is how unlikely, under the old firmware's rate, the new firmware's count must be to halt.
const significance = 0.01

// poissonTail is P(X >= k) for X ~ Poisson(lambda).
func poissonTail(k int, lambda float64) float64 {
	if lambda <= 0 {
		return 0
	}
	term := math.Exp(-lambda) // P(X = 0)
	cdf := 0.0
	for i := 0; i < k; i++ {
		cdf += term
		term *= lambda / float64(i+1)
		if term == 0 && cdf >= 1 {
			break
		}
	}
	return max(1-cdf, 0)
}

func (c *Campaigns) halt(ctx context.Context, camp *lodestone.Campaign, reason string) error {
	s := c.svc
	if _, err := s.store.SetCampaignStatus(ctx, camp.ID, []string{lodestone.CampaignActive},
		lodestone.CampaignHalted, reason, s.now().UTC()); err != nil {
		return err
	}
	s.log.Error("OTA campaign halted by its health gate", "campaign", camp.ID, "name", camp.Name, "reason", reason)
	s.publish(ctx, EventCampaignHalted, "", map[string]any{"campaign_id": camp.ID, "name": camp.Name,
		"reason": reason})
	return nil
}
