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

// campaignForm is the create form's values, kept to draw the form again with what was typed when it is refused.
type campaignForm struct {
	Name, Firmware, Group, Tags, Devices, FromVersion string
	Canary, Waves, Soak, Ratio, MinHours, Failure     string
	OfferTimeout, InstallTimeout                      string
	Activate                                          bool
}

type campaignNewView struct {
	Tabs      []updTab
	Form      campaignForm
	Artifacts []*lodestone.Firmware
	Groups    []*lodestone.Group
}

func (c *Console) campaignNewPage(w http.ResponseWriter, r *request, f campaignForm, fl *flash, status int) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	v := campaignNewView{Tabs: updTabs("/ui/updates"), Form: f}
	if v.Artifacts, err = st.FindFirmware(r.ctx()); err != nil {
		return err
	}
	if g := c.updGroups(); g != nil {
		if v.Groups, err = g.FindGroups(r.ctx()); err != nil {
			return err
		}
	}
	pd := &pageData{Title: "New campaign", Nav: "updates", User: r.user, CSRF: r.csrf, Flash: fl, Data: v}
	c.render(w, r.Request, status, "campaign_new", pd)
	return nil
}

func (c *Console) campaignNew(w http.ResponseWriter, r *request) error {
	f := campaignForm{Canary: "5", Waves: "25, 100", Soak: "1h", Ratio: strconv.FormatFloat(ota.DefaultHealthRatio, 'f',
		-1, 64), MinHours: "0", Failure: "5", Firmware: r.URL.Query().Get("firmware")}
	return c.campaignNewPage(w, r, f, nil, http.StatusOK)
}

// spec turns the form into a campaign spec; the service checks the rest (waves, firmware, group) as for the API.
func (f campaignForm) spec() (ota.CampaignSpec, error) {
	bad := func(format string, args ...any) (ota.CampaignSpec, error) {
		return ota.CampaignSpec{}, lodestone.Errorf(lodestone.EINVALID, format, args...)
	}
	s := ota.CampaignSpec{Name: strings.TrimSpace(f.Name), FromVersion: strings.TrimSpace(f.FromVersion)}
	if len(s.Name) > 128 {
		return bad("the name is at most 128 characters")
	}
	var err error
	if s.FirmwareID, err = strconv.ParseInt(f.Firmware, 10, 64); err != nil || s.FirmwareID <= 0 {
		return bad("choose the firmware to roll out")
	}
	if f.Group != "" {
		g, err := strconv.ParseInt(f.Group, 10, 64)
		if err != nil || g <= 0 {
			return bad("choose a group")
		}
		s.TargetGroupID = &g
	}
	if t := strings.TrimSpace(f.Tags); t != "" {
		if len(t) > 1024 {
			return bad("tags are at most 1024 characters")
		}
		s.TargetTags = &t
	}
	for _, id := range strings.FieldsFunc(f.Devices, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' }) {
		if len(id) > 128 || !printableASCII(id) {
			return bad("device ids are 1-128 visible ASCII characters: %q is not", truncate(id, 40))
		}
		if !slices.Contains(s.DeviceIDs, id) {
			s.DeviceIDs = append(s.DeviceIDs, id)
		}
	}
	if len(s.DeviceIDs) > 100000 {
		return bad("at most 100000 devices")
	}
	if len(s.FromVersion) > 128 || s.FromVersion != "" && !printableASCII(s.FromVersion) {
		return bad("the from-version is at most 128 visible ASCII characters")
	}
	pct := func(v, what string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "%")))
		if err != nil || n < 1 || n > 100 {
			return 0, lodestone.Errorf(lodestone.EINVALID, "%s: %q is not a percentage from 1 to 100", what, v)
		}
		return n, nil
	}
	if strings.TrimSpace(f.Canary) != "" {
		n, err := pct(f.Canary, "canary size")
		if err != nil {
			return s, err
		}
		s.Waves = append(s.Waves, n)
	}
	for _, w := range strings.Split(f.Waves, ",") {
		if strings.TrimSpace(w) == "" {
			continue
		}
		n, err := pct(w, "waves")
		if err != nil {
			return s, err
		}
		s.Waves = append(s.Waves, n)
	}
	if len(s.Waves) > 0 && s.Waves[len(s.Waves)-1] != 100 {
		s.Waves = append(s.Waves, 100) // the last wave is everyone
	}
	dur := func(v, what string) (time.Duration, error) {
		v = strings.TrimSpace(v)
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 365*24*time.Hour {
			return 0, lodestone.Errorf(lodestone.EINVALID, "%s: %q is not a duration such as 30m, 6h or 90s", what, v)
		}
		return d, nil
	}
	if s.SoakTime, err = dur(f.Soak, "soak"); err != nil {
		return s, err
	}
	if s.OfferTimeout, err = dur(f.OfferTimeout, "offer timeout"); err != nil {
		return s, err
	}
	if s.InstallTimeout, err = dur(f.InstallTimeout, "install timeout"); err != nil {
		return s, err
	}
	num := func(v, what string) (*float64, error) {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, nil
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) || x > 1e6 {
			return nil, lodestone.Errorf(lodestone.EINVALID, "%s: %q is not a number of 0 or more", what, v)
		}
		return &x, nil
	}
	if s.HealthRatio, err = num(f.Ratio, "health-gate ratio"); err != nil {
		return s, err
	}
	if s.FailureThreshold, err = num(f.Failure, "failure threshold"); err != nil {
		return s, err
	}
	mh, err := num(f.MinHours, "minimum device-hours")
	if err != nil {
		return s, err
	}
	if mh != nil {
		s.MinDeviceHours = *mh
	}
	if len(s.Waves) > 1 {
		s.Strategy = "canary"
	}
	return s, nil
}

func (c *Console) campaignCreate(w http.ResponseWriter, r *request) error {
	if c.cfg.Updates.Campaigns == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "campaigns are not enabled on this server")
	}
	v := r.PostFormValue
	f := campaignForm{Name: v("name"), Firmware: v("firmware_id"), Group: v("group_id"), Tags: v("tags"),
		Devices: v("device_ids"), FromVersion: v("from_version"), Canary: v("canary"), Waves: v("waves"),
		Soak: v("soak"), Ratio: v("health_ratio"), MinHours: v("min_device_hours"), Failure: v("failure_threshold"),
		OfferTimeout: v("offer_timeout"), InstallTimeout: v("install_timeout"), Activate: v("activate") == "1"}
	refuse := func(err error) error {
		return c.campaignNewPage(w, r, f, &flash{Msg: "Not created: " + lodestone.ErrorMessage(err), Err: true},
			http.StatusUnprocessableEntity)
	}
	spec, err := f.spec()
	if err != nil {
		return refuse(err)
	}
	camp, n, err := c.cfg.Updates.Campaigns.Create(r.ctx(), spec)
	if err != nil {
		switch lodestone.ErrorCode(err) {
		case lodestone.EINVALID, lodestone.ENOTFOUND, lodestone.ECONFLICT:
			return refuse(err)
		}
		return err
	}
	to := "/ui/updates/campaigns/" + itoa(camp.ID)
	msg := fmt.Sprintf("Created campaign %s with %d devices.", camp.Name, n)
	if f.Activate {
		k, err := c.cfg.Updates.Campaigns.Activate(lodestone.WithAudit(r.ctx(), "campaign.activate"), camp.ID)
		if err != nil {
			c.redirect(w, r.Request, to, flash{Msg: msg + " Not started: " + lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		msg += fmt.Sprintf(" Started: the canary wave offers the update to %d of them.", k)
	} else {
		msg += " Start it when you are ready."
	}
	c.redirect(w, r.Request, to, flash{Msg: msg})
	return nil
}
