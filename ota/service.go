// Package ota decides what firmware each device should run: it offers targets to devices that ask (in the ingest
// answer, by polling, or through the ESP32 FUOTA listener), records their progress, confirms installs from the
// version a device reports, signs manifests, and runs campaigns wave by wave behind a crash-rate health gate. It
// holds the rules; storage is a lodestone.OTAStore.
package ota

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Config tunes the service.
type Config struct {
	// SigningKey, when set, signs each artifact's manifest so devices can verify what they download.
	SigningKey ed25519.PrivateKey
	Logger     *slog.Logger
	Events     lodestone.EventPublisher // optional: campaign halts and offers are published here
	Now        func() time.Time
	// DDI keeps hawkBit DDI actions; nil takes them from the OTA store when it implements lodestone.DDIStore.
	DDI lodestone.DDIStore
}

// Service answers devices about updates.
type Service struct {
	store   lodestone.OTAStore
	devices lodestone.DeviceService
	key     ed25519.PrivateKey
	log     *slog.Logger
	events  lodestone.EventPublisher
	now     func() time.Time
	ddi     lodestone.DDIStore
}

// NewService returns the service over store.
func NewService(store lodestone.OTAStore, devices lodestone.DeviceService, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: store, devices: devices, key: cfg.SigningKey, log: cfg.Logger, events: cfg.Events,
		now: cfg.Now, ddi: cfg.DDI}
}

// Store is the storage behind the service.
func (s *Service) Store() lodestone.OTAStore { return s.store }

// Offer is what a device is told about an available update.
type Offer struct {
	Version    string `json:"version"`
	BuildID    uint64 `json:"build_id"`
	Size       int64  `json:"size,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	URL        string `json:"url,omitempty"`
	FirmwareID int64  `json:"firmware_id,omitempty"`
	Filename   string `json:"-"`
	FUOTAPath  string `json:"-"`                   // the update file path of a FUOTA upload
	Signature  string `json:"signature,omitempty"` // base64 ed25519 over the manifest, when signing is on
}

// DownloadURL is where devices fetch an artifact.
func DownloadURL(id int64) string { return "/ota/firmware/" + strconv.FormatInt(id, 10) + "/download" }

// Check returns the update the device should install while it runs version/build, or ok=false.
func (s *Service) Check(ctx context.Context, deviceID, version string, build uint64) (Offer, bool, error) {
	return s.Observe(ctx, deviceID, &lodestone.DeviceInfo{FirmwareVersion: version, BuildID: build})
}

// Observe handles what a device said about itself (in an ingest session or a poll): a reported version equal to
// its campaign target's confirms the install; then it returns the update still on offer, if any.
func (s *Service) Observe(ctx context.Context, deviceID string, info *lodestone.DeviceInfo) (Offer, bool, error) {
	o, ok, err := s.lookup(ctx, deviceID, info, true)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return Offer{}, false, nil
	}
	return o, ok, err
}

// ObserveAll is Observe for every device that reported in one ingest request, with their targets read in one
// query. It returns the offers by device id.
func (s *Service) ObserveAll(ctx context.Context, reported []lodestone.DeviceBatch) (map[string]Offer, error) {
	var ids []string
	for i := range reported {
		if reported[i].Info != nil {
			ids = append(ids, reported[i].DeviceID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	targets, err := s.store.FindTargetsOf(ctx, ids)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	offers := make(map[string]Offer)
	for i := range reported {
		b := &reported[i]
		t := targets[b.DeviceID]
		if t == nil || b.Info == nil {
			continue
		}
		o, ok, err := s.offer(ctx, b.DeviceID, t, b.Info, true)
		if err != nil {
			return offers, err
		}
		if ok {
			offers[b.DeviceID] = o
		}
	}
	return offers, nil
}

// Lookup answers the FUOTA listener: it is Observe, except that a device without any target is an ENOTFOUND
// error (the FUOTA contract answers it differently from a device whose target does not apply), and that it
// records nothing: the FUOTA login is shared by a fleet, so a version it reports cannot confirm a campaign's
// install.
func (s *Service) Lookup(ctx context.Context, deviceID string, info *lodestone.DeviceInfo) (Offer, bool, error) {
	return s.lookup(ctx, deviceID, info, false)
}

func (s *Service) lookup(ctx context.Context, deviceID string, info *lodestone.DeviceInfo, confirm bool) (Offer,
	bool, error) {
	if info == nil {
		return Offer{}, false, nil
	}
	t, err := s.store.FindTarget(ctx, deviceID)
	if err != nil {
		return Offer{}, false, err
	}
	return s.offer(ctx, deviceID, t, info, confirm)
}

// offer confirms an install (when confirm) or returns the update on offer, given the device's target.
func (s *Service) offer(ctx context.Context, deviceID string, t *lodestone.OTATarget, info *lodestone.DeviceInfo,
	confirm bool) (Offer, bool, error) {
	if !t.Offers(info.FirmwareVersion, info.BuildID) {
		if t.CampaignID != nil && confirm {
			// It runs its campaign's firmware now: that confirms the install (a no-op once recorded).
			if _, err := s.store.ReportOTA(ctx, lodestone.OTAReport{DeviceID: deviceID,
				Status: lodestone.OTAInstalled, Version: info.FirmwareVersion, BuildID: info.BuildID},
				s.now()); err != nil {
				return Offer{}, false, err
			}
		}
		return Offer{}, false, nil
	}
	o := Offer{Version: t.TargetVersion, BuildID: t.TargetBuildID}
	if t.FirmwareURL != nil {
		o.URL = *t.FirmwareURL
	}
	if t.FirmwareID != nil {
		f, err := s.store.FindFirmwareByID(ctx, *t.FirmwareID)
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return Offer{}, false, err
		}
		if f != nil {
			o.Size, o.SHA256, o.FirmwareID, o.Filename = f.Size, f.SHA256, f.ID, f.Filename
			if f.FUOTAPath != nil {
				o.FUOTAPath = *f.FUOTAPath
			}
			o.URL = DownloadURL(f.ID)
			if o.BuildID == 0 {
				o.BuildID = f.BuildID
			}
			if _, sig, ok := s.Manifest(f); ok {
				o.Signature = sig
			}
		}
	}
	return o, true, nil
}

// Report records a device's progress. Valid statuses are downloading, installed and failed.
func (s *Service) Report(ctx context.Context, r lodestone.OTAReport) (string, error) {
	switch r.Status {
	case lodestone.OTADownloading, lodestone.OTAInstalled, lodestone.OTAFailed:
	default:
		return "", lodestone.Errorf(lodestone.EINVALID, "status must be downloading, installed or failed")
	}
	if len(r.Reason) > 500 {
		r.Reason = r.Reason[:500]
	}
	st, err := s.store.ReportOTA(ctx, r, s.now())
	if err == nil && st != "" {
		// Only reports on a campaign's target: pages that follow the campaign update at once.
		s.publish(ctx, EventProgress, r.DeviceID, map[string]string{"status": st, "reported": r.Status})
	}
	return st, err
}

// manifest is what a signature covers: the exact JSON bytes below, compact, in this field order.
type manifest struct {
	Version  string `json:"version"`
	BuildID  uint64 `json:"build_id"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Filename string `json:"filename"`
}

// Manifest returns an artifact's manifest bytes and their base64 ed25519 signature; ok is false when no signing
// key is configured, and for a FUOTA upload no provisioner approved (the FUOTA login is shared by a fleet: what
// it uploads must not carry the server's signature on its word alone).
func (s *Service) Manifest(f *lodestone.Firmware) (payload []byte, signature string, ok bool) {
	if s.key == nil || !f.Signable() {
		return nil, "", false
	}
	payload, _ = json.Marshal(manifest{Version: f.Version, BuildID: f.BuildID, Size: f.Size, SHA256: f.SHA256,
		Filename: f.Filename})
	return payload, base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, payload)), true
}

// PublicKey is the key devices verify manifests with, or nil.
func (s *Service) PublicKey() ed25519.PublicKey {
	if s.key == nil {
		return nil
	}
	return s.key.Public().(ed25519.PublicKey)
}

func (s *Service) publish(ctx context.Context, typ, deviceID string, data any) {
	if s.events == nil {
		return
	}
	b, _ := json.Marshal(data)
	if err := s.events.Publish(ctx, lodestone.Event{Type: typ, DeviceID: deviceID, Time: s.now().UTC(),
		Data: b}); err != nil {
		s.log.Warn("publish event", "type", typ, "err", err)
	}
}
