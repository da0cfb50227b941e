package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// This file holds the stability page (each firmware version's devices, device-hours, crash-free share, fault and
// reboot rates, top issues and the comparison with the version before it, from the store's StabilityReader) and
// the device page's timeline (the store's TimelineReader).

// stabilityRanges are the ranges the page offers, by their query value.
var stabilityRanges = []struct {
	Value string
	Span  time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}, {"90d", 90 * 24 * time.Hour}}

type stabilityView struct {
	Available    bool
	Range, Group string
	Tag          string
	Ranges       []string
	Groups       []*lodestone.Group
	Report       lodestone.StabilityReport
}

func (c *Console) stability(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	v := stabilityView{Range: q.Get("range"), Group: strings.TrimSpace(q.Get("group")), Tag: strings.TrimSpace(q.Get("tag"))}
	if v.Range == "" {
		v.Range = "7d"
	}
	var span time.Duration
	for _, rg := range stabilityRanges {
		v.Ranges = append(v.Ranges, rg.Value)
		if rg.Value == v.Range {
			span = rg.Span
		}
	}
	if span == 0 {
		return lodestone.Errorf(lodestone.EINVALID, "range must be one of 24h, 7d, 30d, 90d")
	}
	if len(v.Group) > 128 || len(v.Tag) > 128 {
		return lodestone.Errorf(lodestone.EINVALID, "a group or tag is at most 128 characters")
	}
	if c.cfg.Groups != nil {
		var err error
		if v.Groups, err = c.cfg.Groups.FindGroups(r.ctx()); err != nil {
			return err
		}
	}
	if c.cfg.Stability != nil {
		v.Available = true
		to := c.now().UTC()
		sq := lodestone.StabilityQuery{From: to.Add(-span), To: to, Group: v.Group, Tag: v.Tag}
		if err := lodestone.ValidateStabilityQuery(sq); err != nil {
			return err
		}
		var err error
		if v.Report, err = c.cfg.Stability.Stability(r.ctx(), sq); err != nil {
			return err
		}
	}
	c.page(w, r, "stability", "Stability", v, func(pd *pageData) { pd.Nav = "fleet" })
	return nil
}

// timelineView is a page of a device's timeline on its page, newest first.
type timelineView struct {
	Entries []lodestone.TimelineEntry
	Next    string // the link to the older page
}

const timelineShown = 50

// deviceTimeline reads the page of the device's timeline its page asks for (?timeline=cursor); nil without a
// reader.
func (c *Console) deviceTimeline(ctx context.Context, deviceID, cursor string) (*timelineView, error) {
	if c.cfg.Timeline == nil {
		return nil, nil
	}
	if len(cursor) > 512 {
		return nil, lodestone.Errorf(lodestone.EINVALID, "the timeline cursor is at most 512 characters")
	}
	p, err := c.cfg.Timeline.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: deviceID, Cursor: cursor,
		Limit: timelineShown, LogsPerFault: 5})
	if err != nil {
		return nil, err
	}
	v := &timelineView{Entries: p.Entries}
	if p.Next != "" {
		v.Next = "/ui/devices/" + pathEscape(deviceID) + "?" + url.Values{"timeline": {p.Next}}.Encode() + "#timeline"
	}
	return v, nil
}
