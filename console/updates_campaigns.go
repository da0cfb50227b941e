package console

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
)

type campaignRow struct {
	*lodestone.Campaign
	Counts  lodestone.CampaignCounts
	Done    int // installed + failed
	Percent int64
}

type updatesView struct {
	Tabs      []updTab
	Campaigns []campaignRow
	Artifacts int
	Targets   int
}

// updatesHome is the campaigns list, each with its progress; it follows campaign events live.
func (c *Console) updatesHome(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	camps, err := st.FindCampaigns(r.ctx())
	if err != nil {
		return err
	}
	v := updatesView{Tabs: updTabs("/ui/updates")}
	for _, cp := range camps {
		n, err := st.CountCampaignDevices(r.ctx(), cp.ID)
		if err != nil {
			return err
		}
		row := campaignRow{Campaign: cp, Counts: n, Done: n.Installed + n.Failed}
		if t := n.Total(); t > 0 {
			row.Percent = int64(n.Installed) * 100 / int64(t)
		}
		v.Campaigns = append(v.Campaigns, row)
	}
	fws, err := st.FindFirmware(r.ctx())
	if err != nil {
		return err
	}
	v.Artifacts = len(fws)
	c.updPage(w, r, "updates", "Updates", v)
	return nil
}

type waveRow struct {
	Index     int
	Percent   int
	Devices   int // cumulative devices this wave reaches
	Offered   int // devices offered in this wave
	Installed int
	Failed    int
	State     string // done, current, next
}

type campaignView struct {
	Tabs      []updTab
	C         *lodestone.Campaign
	Firmware  *lodestone.Firmware
	Group     *lodestone.Group
	Counts    lodestone.CampaignCounts
	States    []stateCount
	Waves     []waveRow
	Devices   []*lodestone.CampaignDevice
	More      int
	Health    *lodestone.CampaignHealth
	Rates     [4]string // new faults, old faults, new reboots, old reboots per device-hour
	Gate      string    // what the gate says now
	GateBad   bool
	SoakUntil *time.Time
	Actions   []campaignAction
	Series    string
	Filter    string
}

type stateCount struct {
	State string
	N     int
}

// campaignActions are what an operator may do to a campaign in each status, in the order the page offers them.
var campaignActions = map[string][]string{
	lodestone.CampaignCreated:   {"activate", "abort"},
	lodestone.CampaignActive:    {"pause", "abort", "rollback"},
	lodestone.CampaignPaused:    {"resume", "abort", "rollback"},
	lodestone.CampaignHalted:    {"resume", "abort", "rollback"},
	lodestone.CampaignCompleted: {"rollback"},
}

type campaignAction struct {
	Name, Label, Explain string
	Danger               bool
}

func describeAction(a string, camp *lodestone.Campaign, n lodestone.CampaignCounts) campaignAction {
	notInstalled := n.Offered + n.Downloading + n.Failed
	switch a {
	case "activate":
		return campaignAction{a, "Start", "The canary wave is offered at once; later waves follow when each has " +
			"soaked for " + shortDuration(camp.SoakTime) + " and passed the health gate.", false}
	case "resume":
		why := ""
		if camp.HaltReason != "" {
			why = " Its health gate halted it (" + camp.HaltReason + "): resume only once you know why."
		}
		return campaignAction{a, "Resume", "The campaign continues from wave " + strconv.Itoa(camp.Wave+1) +
			": the next wave is offered once the current one has soaked and passed the health gate." + why, false}
	case "pause":
		return campaignAction{a, "Pause", fmt.Sprintf("No further wave is offered; the %d devices already offered "+
			"keep their targets.", n.Total()-n.Pending), false}
	case "abort":
		return campaignAction{a, "Abort", fmt.Sprintf("The campaign ends. The %d devices that have not installed "+
			"get their previous targets back; the %d that installed keep the new firmware.", notInstalled,
			n.Installed), true}
	case "rollback":
		return campaignAction{a, "Roll back", fmt.Sprintf("The campaign ends and every device it offered firmware "+
			"to (%d, the %d installed ones included) gets its previous target back, so it returns to the firmware "+
			"it ran before.", n.Total()-n.Pending, n.Installed), true}
	}
	return campaignAction{Name: a}
}

// shortDuration writes 168h0m0s as 168h and 1h30m0s as 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// statusOrder sorts the device table: what needs attention first.
var statusOrder = map[string]int{lodestone.OTAFailed: 0, lodestone.OTADownloading: 1, lodestone.OTAOffered: 2,
	lodestone.OTAInstalled: 3, lodestone.OTAPending: 4}

// maxCampaignRows bounds the device table; the counts cover every device.
const maxCampaignRows = 200

func (c *Console) findCampaign(r *request) (lodestone.OTAStore, *lodestone.Campaign, error) {
	st, err := c.otaStore()
	if err != nil {
		return nil, nil, err
	}
	id, err := pathInt64(r, "campaign")
	if err != nil {
		return nil, nil, err
	}
	camp, err := st.FindCampaign(r.ctx(), id)
	return st, camp, err
}

func (c *Console) campaignPage(w http.ResponseWriter, r *request) error {
	st, camp, err := c.findCampaign(r)
	if err != nil {
		return err
	}
	ctx := r.ctx()
	v := campaignView{Tabs: updTabs("/ui/updates"), C: camp, Filter: r.URL.Query().Get("state"),
		Series: "/ui/updates/campaigns/" + itoa(camp.ID) + "/series?key=campaign&fleet=1"}
	if v.Filter != "" && !slices.Contains([]string{lodestone.OTAPending, lodestone.OTAOffered, lodestone.OTADownloading,
		lodestone.OTAInstalled, lodestone.OTAFailed}, v.Filter) {
		return lodestone.Errorf(lodestone.EINVALID, "unknown device state %q", v.Filter)
	}
	if v.Firmware, err = st.FindFirmwareByID(ctx, camp.FirmwareID); err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		return err
	}
	if camp.TargetGroupID != nil && c.updGroups() != nil {
		if v.Group, err = c.updGroups().FindGroup(ctx, *camp.TargetGroupID); err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return err
		}
	}
	devs, err := st.FindCampaignDevices(ctx, camp.ID)
	if err != nil {
		return err
	}
	n := lodestone.CampaignCounts{}
	for _, d := range devs {
		switch d.Status {
		case lodestone.OTAPending:
			n.Pending++
		case lodestone.OTAOffered:
			n.Offered++
		case lodestone.OTADownloading:
			n.Downloading++
		case lodestone.OTAInstalled:
			n.Installed++
		case lodestone.OTAFailed:
			n.Failed++
		}
	}
	v.Counts = n
	v.States = []stateCount{{lodestone.OTAPending, n.Pending}, {lodestone.OTAOffered, n.Offered},
		{lodestone.OTADownloading, n.Downloading}, {lodestone.OTAInstalled, n.Installed}, {lodestone.OTAFailed, n.Failed}}
	total := n.Total()
	for i, pct := range camp.Waves {
		row := waveRow{Index: i, Percent: pct, Devices: int(math.Ceil(float64(total) * float64(pct) / 100))}
		if i == 0 && total > 0 {
			row.Devices = max(row.Devices, 1)
		}
		switch {
		case i < camp.Wave:
			row.State = "done"
		case i == camp.Wave:
			row.State = "current"
		default:
			row.State = "next"
		}
		v.Waves = append(v.Waves, row)
	}
	for _, d := range devs {
		if d.Wave >= 0 && d.Wave < len(v.Waves) {
			v.Waves[d.Wave].Offered++
			switch d.Status {
			case lodestone.OTAInstalled:
				v.Waves[d.Wave].Installed++
			case lodestone.OTAFailed:
				v.Waves[d.Wave].Failed++
			}
		}
	}
	if camp.WaveStartedAt != nil && camp.Status == lodestone.CampaignActive {
		t := camp.WaveStartedAt.Add(camp.SoakTime)
		v.SoakUntil = &t
	}
	shown := devs[:0:0]
	for _, d := range devs {
		if v.Filter == "" || d.Status == v.Filter {
			shown = append(shown, d)
		}
	}
	slices.SortStableFunc(shown, func(a, b *lodestone.CampaignDevice) int {
		if x, y := statusOrder[a.Status], statusOrder[b.Status]; x != y {
			return x - y
		}
		return b.UpdatedAt.Compare(a.UpdatedAt)
	})
	if len(shown) > maxCampaignRows {
		v.More, shown = len(shown)-maxCampaignRows, shown[:maxCampaignRows]
	}
	v.Devices = shown
	if camp.StartedAt != nil {
		h, err := st.CampaignHealth(ctx, camp.ID, *camp.StartedAt, c.now().UTC())
		if err != nil {
			return err
		}
		v.Health = &h
		rate := func(k int, hours float64) string {
			if hours <= 0 {
				return "—"
			}
			return strconv.FormatFloat(float64(k)/hours, 'g', 3, 64)
		}
		v.Rates = [4]string{rate(h.NewFaults, h.NewHours), rate(h.OldFaults, h.OldHours),
			rate(h.NewReboots, h.NewHours), rate(h.OldReboots, h.OldHours)}
		switch {
		case camp.HealthRatio <= 0:
			v.Gate = "off (ratio 0): waves advance on soak time and the failure threshold alone"
		case h.NewHours < camp.MinDeviceHours:
			v.Gate = fmt.Sprintf("waiting for evidence: %.2f of %.2f device-hours on the new firmware",
				h.NewHours, camp.MinDeviceHours)
		default:
			if reason, bad := ota.Unhealthy(h, camp.HealthRatio); bad {
				v.Gate, v.GateBad = "fails: "+reason, true
			} else {
				v.Gate = fmt.Sprintf("passes: neither rate on the new firmware is significantly over %g× the old one's",
					camp.HealthRatio)
			}
		}
	}
	if r.user.Allows(lodestone.RoleProvisioner) {
		for _, a := range campaignActions[camp.Status] {
			v.Actions = append(v.Actions, describeAction(a, camp, n))
		}
	}
	c.updPage(w, r, "campaign", "Campaign "+camp.Name, v, chart)
	return nil
}

// campaignSeries answers the campaign chart in the shape of the metric series (chart.js draws both): the
// cumulative number of devices offered, installed and failed over time, from the devices' own timestamps.
func (c *Console) campaignSeries(w http.ResponseWriter, r *request) error {
	st, camp, err := c.findCampaign(r)
	if err != nil {
		return err
	}
	devs, err := st.FindCampaignDevices(r.ctx(), camp.ID)
	if err != nil {
		return err
	}
	from, to := camp.CreatedAt, c.now().UTC()
	if camp.StartedAt != nil {
		from = *camp.StartedAt
	}
	if !to.After(from) {
		to = from.Add(time.Second)
	}
	const points = 120
	step := max(to.Sub(from)/points, time.Second)
	var offered, installed, failed []time.Time
	for _, d := range devs {
		if d.OfferedAt != nil {
			offered = append(offered, *d.OfferedAt)
		}
		if d.InstalledAt != nil && d.Status == lodestone.OTAInstalled {
			installed = append(installed, *d.InstalledAt)
		}
		if d.Status == lodestone.OTAFailed {
			failed = append(failed, d.UpdatedAt)
		}
	}
	series := []seriesJSON{}
	for _, s := range []struct {
		name  string
		times []time.Time
	}{{"offered", offered}, {"installed", installed}, {"failed", failed}} {
		slices.SortFunc(s.times, func(a, b time.Time) int { return a.Compare(b) })
		j := seriesJSON{DeviceID: s.name, Key: "devices", StepMS: step.Milliseconds(), Buckets: [][6]any{}}
		k := 0
		for t := from; !t.After(to); t = t.Add(step) {
			end := t.Add(step)
			for k < len(s.times) && s.times[k].Before(end) {
				k++
			}
			j.Buckets = append(j.Buckets, [6]any{t.UnixMilli(), k, k, k, k, k})
		}
		series = append(series, j)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	writeJSONBody(w, map[string]any{"from": from.UnixMilli(), "to": to.Add(step).UnixMilli(), "series": series})
	return nil
}

type confirmView struct {
	Tabs   []updTab
	C      *lodestone.Campaign
	Action campaignAction
	Counts lodestone.CampaignCounts
}

// campaignConfirm is the confirmation step: what the action will do to which devices, and one button to do it.
func (c *Console) campaignConfirm(w http.ResponseWriter, r *request) error {
	st, camp, err := c.findCampaign(r)
	if err != nil {
		return err
	}
	a := r.PathValue("action")
	if !slices.Contains(campaignActions[camp.Status], a) {
		return lodestone.Errorf(lodestone.EINVALID, "a campaign that is %s cannot %s", camp.Status, a)
	}
	n, err := st.CountCampaignDevices(r.ctx(), camp.ID)
	if err != nil {
		return err
	}
	act := describeAction(a, camp, n)
	c.updPage(w, r, "campaign_confirm", act.Label+" campaign "+camp.Name+"?",
		confirmView{Tabs: updTabs("/ui/updates"), C: camp, Action: act, Counts: n})
	return nil
}

// campaignAct runs a confirmed action with the API's service calls and audit names (campaign.pause, …).
func (c *Console) campaignAct(w http.ResponseWriter, r *request) error {
	cs := c.cfg.Updates.Campaigns
	if cs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "campaigns are not enabled on this server")
	}
	id, err := pathInt64(r, "campaign")
	if err != nil {
		return err
	}
	a := r.PathValue("action")
	base := "/ui/updates/campaigns/" + itoa(id)
	if !slices.Contains([]string{"activate", "resume", "pause", "abort", "rollback"}, a) {
		return lodestone.Errorf(lodestone.ENOTFOUND, "there is no campaign action %q", a)
	}
	if r.PostFormValue("confirm") != "yes" {
		c.redirect(w, r.Request, base+"/"+a, flash{Msg: "Confirm first: this is what it will do."})
		return nil
	}
	ctx := lodestone.WithAudit(r.ctx(), "campaign."+a)
	var msg string
	switch a {
	case "activate", "resume":
		var k int
		if k, err = cs.Activate(ctx, id); err == nil {
			msg = "Campaign running."
			if k > 0 {
				msg = fmt.Sprintf("Campaign running: the update is offered to %d devices.", k)
			}
		}
	case "pause":
		if err = cs.Pause(ctx, id); err == nil {
			msg = "Campaign paused: no further wave is offered."
		}
	case "abort":
		var k int
		if k, err = cs.Abort(ctx, id); err == nil {
			msg = fmt.Sprintf("Campaign aborted: %d devices got their previous targets back.", k)
		}
	case "rollback":
		var k int
		if k, err = cs.Rollback(ctx, id); err == nil {
			msg = fmt.Sprintf("Campaign rolled back: %d devices got their previous targets back.", k)
		}
	}
	if err != nil {
		if code := lodestone.ErrorCode(err); code == lodestone.EINVALID || code == lodestone.ECONFLICT {
			c.redirect(w, r.Request, base, flash{Msg: "Not done: " + lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	c.redirect(w, r.Request, base, flash{Msg: msg})
	return nil
}
