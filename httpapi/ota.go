package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
)

// DefaultMaxFirmware is the largest firmware image accepted when Config.MaxFirmwareBytes is unset.
const DefaultMaxFirmware = 256 << 20

// routesOTA registers ferrite's /ota routes and lodestone's device-side ones. Devices download with the ingest
// key (or openly when none is set) or their own device key (only their target's artifact), never with a user
// login: ferrite required one, so its devices could not.
func (s *Server) routesOTA() {
	s.handleOTA("GET /ota/targets", AccessViewer, s.listTargets)
	s.handleOTA("POST /ota/targets", AccessProvisioner, s.setTarget)
	s.handleOTA("GET /ota/targets/{device_id}", AccessViewer, s.getTarget)
	s.handleOTA("DELETE /ota/targets/{device_id}", AccessProvisioner, s.deleteTarget)

	s.handleOTA("GET /ota/firmware", AccessViewer, s.listFirmware)
	s.handleOTA("POST /ota/firmware", AccessProvisioner, s.uploadFirmware)
	s.handleOTA("GET /ota/firmware/{id}", AccessViewer, s.getFirmware)
	s.handleOTA("DELETE /ota/firmware/{id}", AccessProvisioner, s.deleteFirmware)
	s.handleOTA("POST /ota/firmware/{id}/approve", AccessProvisioner, s.approveFirmware)
	s.handleOTA("GET /ota/firmware/{id}/download", AccessDevice, s.downloadFirmware)
	s.handleOTA("GET /ota/firmware/{id}/manifest", AccessDevice, s.firmwareManifest)
	s.handleOTA("GET /ota/signing-key", AccessPublic, s.signingKey)

	s.handleOTA("GET /ota/check/{device_id}", AccessDevice, s.checkUpdate)
	s.handleOTA("POST /ota/report", AccessDevice, s.reportOTA)

	s.handleOTA("GET /ota/campaigns", AccessViewer, s.listCampaigns)
	s.handleOTA("POST /ota/campaigns", AccessProvisioner, s.createCampaign)
	s.handleOTA("GET /ota/campaigns/{id}", AccessViewer, s.getCampaign)
	s.handleOTA("GET /ota/campaigns/{id}/devices", AccessViewer, s.listCampaignDevices)
	s.handleOTA("POST /ota/campaigns/{id}/activate", AccessProvisioner, s.campaignAction)
	s.handleOTA("POST /ota/campaigns/{id}/resume", AccessProvisioner, s.campaignAction)
	s.handleOTA("POST /ota/campaigns/{id}/pause", AccessProvisioner, s.campaignAction)
	s.handleOTA("POST /ota/campaigns/{id}/abort", AccessProvisioner, s.campaignAction)
	s.handleOTA("POST /ota/campaigns/{id}/rollback", AccessProvisioner, s.campaignAction)
}

// handleOTA registers an OTA route; without the OTA service wired it answers 503, like other unwired features.
func (s *Server) handleOTA(pattern string, access Access, h handlerFunc) {
	s.handle(pattern, access, func(w http.ResponseWriter, r *http.Request) error {
		if s.deps.OTA == nil {
			return lodestone.Errorf(lodestone.EUNAVAILABLE, "firmware updates are not enabled on this server")
		}
		return h(w, r)
	})
}

func (s *Server) otaStore() lodestone.OTAStore { return s.deps.OTA.Store() }

// decodeJSON reads a small JSON body into v with the API's one decoder (415, 413, 400, 422 as everywhere).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return DecodeJSON(w, r, v, 64<<10)
}

// validText accepts 1-max visible characters without quotes or slashes, so a value can sit in a file name and a
// Content-Disposition header as it is.
func validText(v string, maxLen int) bool {
	if v == "" || len(v) > maxLen {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '/' {
			return false
		}
	}
	return true
}

type targetJSON struct {
	ID            int64   `json:"id"`
	DeviceID      string  `json:"device_id"`
	TargetVersion string  `json:"target_version"`
	TargetBuildID int64   `json:"target_build_id"`
	FirmwareURL   *string `json:"firmware_url"`
	CreatedAt     string  `json:"created_at"`
	FirmwareID    *int64  `json:"firmware_id"`
	FromVersion   *string `json:"from_version"`
	CampaignID    *int64  `json:"campaign_id"`
}

func newTargetJSON(t *lodestone.OTATarget) targetJSON {
	return targetJSON{ID: t.ID, DeviceID: t.DeviceID, TargetVersion: t.TargetVersion,
		TargetBuildID: int64(t.TargetBuildID), FirmwareURL: t.FirmwareURL, CreatedAt: ts(t.CreatedAt),
		FirmwareID: t.FirmwareID, FromVersion: t.FromVersion, CampaignID: t.CampaignID}
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.otaStore().FindTargets(r.Context())
	if err != nil {
		return err
	}
	out := make([]targetJSON, len(list))
	for i, t := range list {
		out[i] = newTargetJSON(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"targets": out})
	return nil
}

func (s *Server) setTarget(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		DeviceID      string  `json:"device_id"`
		TargetVersion string  `json:"target_version"`
		TargetBuildID int64   `json:"target_build_id"`
		FirmwareURL   *string `json:"firmware_url"`
		FirmwareID    *int64  `json:"firmware_id"`
		FromVersion   *string `json:"from_version"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if !validDeviceHeader(in.DeviceID) {
		return lodestone.Errorf(lodestone.EINVALID, "device_id must be 1-128 visible ASCII characters")
	}
	if in.TargetVersion == "" || len(in.TargetVersion) > 128 {
		return lodestone.Errorf(lodestone.EINVALID, "target_version is required (at most 128 characters)")
	}
	t := &lodestone.OTATarget{DeviceID: in.DeviceID, TargetVersion: in.TargetVersion,
		TargetBuildID: uint64(in.TargetBuildID), FirmwareURL: in.FirmwareURL, FirmwareID: in.FirmwareID,
		FromVersion: in.FromVersion, CreatedAt: time.Now().UTC()}
	if err := s.otaStore().SetTarget(r.Context(), t); err != nil {
		return err
	}
	got, err := s.otaStore().FindTarget(r.Context(), t.DeviceID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"target": newTargetJSON(got)})
	return nil
}

func (s *Server) getTarget(w http.ResponseWriter, r *http.Request) error {
	t, err := s.otaStore().FindTarget(r.Context(), r.PathValue("device_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"target": newTargetJSON(t)})
	return nil
}

func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request) error {
	if err := s.otaStore().DeleteTarget(r.Context(), r.PathValue("device_id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// checkUpdate is the poll route for devices that send no chunks: 200 with the offer, or 204 when none.
func (s *Server) checkUpdate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var build uint64
	if v := q.Get("build_id"); v != "" {
		var err error
		if build, err = strconv.ParseUint(v, 10, 64); err != nil {
			return lodestone.Errorf(lodestone.EINVALID, "build_id must be an unsigned integer")
		}
	}
	if q.Get("version") == "" && build == 0 {
		return lodestone.Errorf(lodestone.EINVALID, "give the running firmware as version= and/or build_id=")
	}
	if err := ownDevice(r, r.PathValue("device_id")); err != nil {
		return err
	}
	info := &lodestone.DeviceInfo{FirmwareVersion: q.Get("version"), BuildID: build}
	o, ok, err := s.deps.OTA.Observe(r.Context(), r.PathValue("device_id"), info)
	if err != nil {
		return err
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"ota": o})
	return nil
}

// ownDevice refuses a device key speaking for another device; the fleet-wide ingest key speaks for any.
func ownDevice(r *http.Request, deviceID string) error {
	if p := PrincipalFrom(r.Context()); p != nil && p.DeviceID != "" && p.DeviceID != deviceID {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "this device key belongs to device %q, not %q", p.DeviceID,
			deviceID)
	}
	return nil
}

func (s *Server) reportOTA(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		DeviceID string `json:"device_id"`
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		Version  string `json:"version"`
		BuildID  uint64 `json:"build_id"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if !validDeviceHeader(in.DeviceID) {
		return lodestone.Errorf(lodestone.EINVALID, "device_id must be 1-128 visible ASCII characters")
	}
	if err := ownDevice(r, in.DeviceID); err != nil {
		return err
	}
	st, err := s.deps.OTA.Report(r.Context(), lodestone.OTAReport{DeviceID: in.DeviceID, Status: in.Status,
		Reason: in.Reason, Version: in.Version, BuildID: in.BuildID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "campaign_status": st})
	return nil
}

// ingestOTA confirms installs from the DeviceInfo chunks of a stored request and, when the request came from one
// device, returns the update on offer to it for the ingest answer. Failures are logged: the data is committed.
func (s *Server) ingestOTA(r *http.Request, reported []lodestone.DeviceBatch) *ota.Offer {
	if s.deps.OTA == nil {
		return nil
	}
	offers, err := s.deps.OTA.ObserveAll(r.Context(), reported)
	if err != nil {
		s.log.Warn("OTA check after ingest", "devices", len(reported), "err", err)
	}
	if len(reported) != 1 {
		return nil // the answer can carry one device's offer; a gateway's devices poll or read it per device
	}
	if o, ok := offers[reported[0].DeviceID]; ok {
		return &o
	}
	return nil
}

func (s *Server) signingKey(w http.ResponseWriter, r *http.Request) error {
	k := s.deps.OTA.PublicKey()
	if k == nil {
		return lodestone.Errorf(lodestone.ENOTFOUND, "manifest signing is not configured")
	}
	writeJSON(w, http.StatusOK, map[string]string{"algorithm": "ed25519",
		"public_key": base64.StdEncoding.EncodeToString(k)})
	return nil
}

func (s *Server) deadline(w http.ResponseWriter, read bool, d time.Duration) {
	rc := http.NewResponseController(w)
	if read {
		rc.SetReadDeadline(time.Now().Add(d))
	}
	rc.SetWriteDeadline(time.Now().Add(d))
}

func firmwareFilename(version string, build uint64, sum string) string {
	return fmt.Sprintf("%s-b%d-%s.bin", version, build, sum[:8])
}
