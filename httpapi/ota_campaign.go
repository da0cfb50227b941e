package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
)

type campaignJSON struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	FirmwareID       int64   `json:"firmware_id"`
	TargetVersion    string  `json:"target_version"`
	Strategy         string  `json:"strategy"`
	TargetGroupID    *int64  `json:"target_group_id"`
	TargetTags       *string `json:"target_tags"`
	RolloutPercent   int64   `json:"rollout_percent"`
	FailureThreshold float64 `json:"failure_threshold"`
	Status           string  `json:"status"`
	CreatedAt        string  `json:"created_at"`
	UpdatedAt        string  `json:"updated_at"`

	Waves          []int   `json:"waves"`
	Wave           int     `json:"wave"`
	SoakSeconds    int64   `json:"soak_seconds"`
	HealthRatio    float64 `json:"health_ratio"`
	MinDeviceHours float64 `json:"min_device_hours"`
	OfferTimeout   int64   `json:"offer_timeout_seconds"`
	InstallTimeout int64   `json:"install_timeout_seconds"`
	HaltReason     string  `json:"halt_reason"`
}

func newCampaignJSON(c *lodestone.Campaign) campaignJSON {
	return campaignJSON{ID: c.ID, Name: c.Name, FirmwareID: c.FirmwareID, TargetVersion: c.TargetVersion,
		Strategy: c.Strategy, TargetGroupID: c.TargetGroupID, TargetTags: c.TargetTags,
		RolloutPercent: c.RolloutPercent, FailureThreshold: c.FailureThreshold, Status: c.Status,
		CreatedAt: ts(c.CreatedAt), UpdatedAt: ts(c.UpdatedAt), Waves: c.Waves, Wave: c.Wave,
		SoakSeconds: int64(c.SoakTime / time.Second), HealthRatio: c.HealthRatio, MinDeviceHours: c.MinDeviceHours,
		OfferTimeout: int64(c.OfferTimeout / time.Second), InstallTimeout: int64(c.InstallTimeout / time.Second),
		HaltReason: c.HaltReason}
}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	var statuses []string
	if v := r.URL.Query().Get("status"); v != "" {
		statuses = strings.Split(v, ",")
	}
	list, err := s.otaStore().FindCampaigns(r.Context(), statuses...)
	if err != nil {
		return err
	}
	out := make([]campaignJSON, len(list))
	for i, c := range list {
		out[i] = newCampaignJSON(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": out})
	return nil
}

func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Campaigns == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "campaigns are not enabled")
	}
	var in struct {
		Name             string   `json:"name"`
		FirmwareID       int64    `json:"firmware_id"`
		TargetVersion    string   `json:"target_version"`
		Strategy         string   `json:"strategy"`
		TargetGroupID    *int64   `json:"target_group_id"`
		TargetTags       *string  `json:"target_tags"`
		RolloutPercent   *int64   `json:"rollout_percent"`
		FailureThreshold *float64 `json:"failure_threshold"`
		DeviceIDs        []string `json:"device_ids"`
		FromVersion      string   `json:"from_version"`
		Waves            []int    `json:"waves"`
		SoakSeconds      int64    `json:"soak_seconds"`
		HealthRatio      *float64 `json:"health_ratio"`
		MinDeviceHours   float64  `json:"min_device_hours"`
		OfferTimeout     int64    `json:"offer_timeout_seconds"`
		InstallTimeout   int64    `json:"install_timeout_seconds"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	for _, d := range in.DeviceIDs {
		if !validDeviceHeader(d) {
			return lodestone.Errorf(lodestone.EINVALID, "device_ids must be 1-128 visible ASCII characters each")
		}
	}
	if len(in.DeviceIDs) > 100000 {
		return lodestone.Errorf(lodestone.EINVALID, "at most 100000 device_ids")
	}
	c, n, err := s.deps.Campaigns.Create(r.Context(), ota.CampaignSpec{Name: in.Name, FirmwareID: in.FirmwareID,
		TargetVersion: in.TargetVersion, Strategy: in.Strategy, TargetGroupID: in.TargetGroupID,
		TargetTags: in.TargetTags, RolloutPercent: in.RolloutPercent, FailureThreshold: in.FailureThreshold,
		DeviceIDs: in.DeviceIDs, FromVersion: in.FromVersion, Waves: in.Waves,
		SoakTime: time.Duration(in.SoakSeconds) * time.Second, HealthRatio: in.HealthRatio,
		MinDeviceHours: in.MinDeviceHours, OfferTimeout: time.Duration(in.OfferTimeout) * time.Second,
		InstallTimeout: time.Duration(in.InstallTimeout) * time.Second})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"campaign": newCampaignJSON(c), "devices_added": n})
	return nil
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	c, err := s.otaStore().FindCampaign(r.Context(), id)
	if err != nil {
		return err
	}
	n, err := s.otaStore().CountCampaignDevices(r.Context(), id)
	if err != nil {
		return err
	}
	// ferrite's double nesting: {"campaign":{"campaign":…,"pending":…}}.
	writeJSON(w, http.StatusOK, map[string]any{"campaign": map[string]any{"campaign": newCampaignJSON(c),
		"pending": n.Pending, "offered": n.Offered, "downloading": n.Downloading, "installed": n.Installed,
		"failed": n.Failed}})
	return nil
}

type campaignDeviceJSON struct {
	ID         int64  `json:"id"`
	CampaignID int64  `json:"campaign_id"`
	DeviceID   string `json:"device_id"`
	Status     string `json:"status"`
	UpdatedAt  string `json:"updated_at"`
	Wave       int    `json:"wave"`
	Reason     string `json:"reason"`
}

func (s *Server) listCampaignDevices(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	list, err := s.otaStore().FindCampaignDevices(r.Context(), id)
	if err != nil {
		return err
	}
	out := make([]campaignDeviceJSON, len(list))
	for i, d := range list {
		out[i] = campaignDeviceJSON{ID: d.ID, CampaignID: d.CampaignID, DeviceID: d.DeviceID, Status: d.Status,
			UpdatedAt: ts(d.UpdatedAt), Wave: d.Wave, Reason: d.Reason}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

// campaignAction serves activate, resume, pause, abort and rollback.
func (s *Server) campaignAction(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Campaigns == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "campaigns are not enabled")
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ctx, cs := r.Context(), s.deps.Campaigns
	action := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	ctx = lodestone.WithAudit(ctx, "campaign."+action) // resume and activate are one call; the log tells them apart
	out := map[string]any{"ok": true}
	switch action {
	case "activate", "resume":
		n, err := cs.Activate(ctx, id)
		if err != nil {
			return err
		}
		out["status"], out["targets_set"] = lodestone.CampaignActive, n
	case "pause":
		if err := cs.Pause(ctx, id); err != nil {
			return err
		}
		out["status"] = lodestone.CampaignPaused
	case "abort":
		n, err := cs.Abort(ctx, id)
		if err != nil {
			return err
		}
		out["status"], out["targets_restored"] = lodestone.CampaignAborted, n
	case "rollback":
		n, err := cs.Rollback(ctx, id)
		if err != nil {
			return err
		}
		out["status"], out["targets_removed"] = lodestone.CampaignRolledBack, n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
