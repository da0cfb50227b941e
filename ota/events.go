package ota

import (
	"context"

	"github.com/lodestone-fleet/lodestone"
)

// Events that let pages follow campaigns live (the console's campaign page refreshes on them).
const (
	// EventCampaign: a campaign changed: an operator's action, or a tick that moved its wave, its status or the
	// states of its devices. Data: {"campaign_id":…,"status":…,"why":…}.
	EventCampaign = "ota_campaign"
	// EventProgress: a device's report moved it in its campaign (POST /ota/report). Data: {"status":…,
	// "reported":…}. Installs confirmed by a device's DeviceInfo show in the next tick's EventCampaign.
	EventProgress = "ota_progress"
)

// campaignMark is what a tick compares to tell whether a campaign changed since the last one.
type campaignMark struct {
	status string
	wave   int
	counts lodestone.CampaignCounts
}

// changed publishes EventCampaign for campaign id after an operator's action.
func (c *Campaigns) changed(ctx context.Context, id int64, why string) {
	if c.svc.events == nil {
		return
	}
	camp, err := c.svc.store.FindCampaign(ctx, id)
	if err != nil {
		return
	}
	c.svc.publish(ctx, EventCampaign, "", map[string]any{"campaign_id": id, "status": camp.Status, "why": why})
}

// noticeChange publishes EventCampaign when a tick left campaign id other than the last tick did: devices that
// confirmed an install through their DeviceInfo (ingest), timeouts, a new wave, completion or a halt. It costs
// two reads per active campaign per tick and publishes nothing while a campaign stands still.
func (c *Campaigns) noticeChange(ctx context.Context, id int64) {
	if c.svc.events == nil {
		return
	}
	camp, err := c.svc.store.FindCampaign(ctx, id)
	if err != nil {
		return
	}
	n, err := c.svc.store.CountCampaignDevices(ctx, id)
	if err != nil {
		return
	}
	mark := campaignMark{status: camp.Status, wave: camp.Wave, counts: n}
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[int64]campaignMark{}
	}
	old, ok := c.seen[id]
	c.seen[id] = mark
	if camp.Status != lodestone.CampaignActive {
		delete(c.seen, id) // only active campaigns tick; the next activation starts afresh
	}
	c.mu.Unlock()
	if ok && old == mark {
		return
	}
	c.svc.publish(ctx, EventCampaign, "", map[string]any{"campaign_id": id, "status": camp.Status, "why": "tick"})
}
