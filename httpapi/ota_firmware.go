package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
)

type firmwareJSON struct {
	ID        int64   `json:"id"`
	Version   string  `json:"version"`
	BuildID   int64   `json:"build_id"`
	SHA256    string  `json:"sha256"`
	Size      int64   `json:"size"`
	Filename  string  `json:"filename"`
	Signer    *string `json:"signer"`
	CreatedAt string  `json:"created_at"`
	Notes     string  `json:"notes"`
	BuildIDU  uint64  `json:"build_id_u64"` // ferrite's i64 column wraps builds over 2^63

	// Origin is "operator" (/ota/firmware) or "fuota" (the FUOTA listener's PUT /files, under FUOTAPath). A FUOTA
	// upload is signed only once approved (POST /ota/firmware/{id}/approve).
	Origin     string  `json:"origin"`
	FUOTAPath  *string `json:"fuota_path"`
	Approved   bool    `json:"approved"`
	ApprovedAt *string `json:"approved_at"`
	ApprovedBy *string `json:"approved_by"`
}

func newFirmwareJSON(f *lodestone.Firmware) firmwareJSON {
	j := firmwareJSON{ID: f.ID, Version: f.Version, BuildID: int64(f.BuildID), SHA256: f.SHA256, Size: f.Size,
		Filename: f.Filename, Signer: f.Signer, CreatedAt: ts(f.CreatedAt), Notes: f.Notes, BuildIDU: f.BuildID,
		Origin: f.Origin, FUOTAPath: f.FUOTAPath, Approved: f.Signable()}
	if f.ApprovedAt != nil {
		at, by := ts(*f.ApprovedAt), f.ApprovedBy
		j.ApprovedAt, j.ApprovedBy = &at, &by
	}
	return j
}

func (s *Server) maxFirmware() int64 {
	if s.cfg.MaxFirmwareBytes > 0 {
		return s.cfg.MaxFirmwareBytes
	}
	return DefaultMaxFirmware
}

// uploadFirmware streams the body into blob storage (hashing on the way), then records the artifact. The same
// bytes under the same version and build are the same artifact: uploading them again answers the existing one.
func (s *Server) uploadFirmware(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Blobs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "no blob storage configured")
	}
	version := r.Header.Get("X-Firmware-Version")
	if version == "" {
		version = "unknown"
	}
	if !validText(version, 64) {
		return lodestone.Errorf(lodestone.EINVALID,
			"X-Firmware-Version must be 1-64 printable characters without quotes, slashes or backslashes")
	}
	var build uint64
	if v := r.Header.Get("X-Build-Id"); v != "" {
		b, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return lodestone.Errorf(lodestone.EINVALID, "X-Build-Id must be an unsigned decimal integer")
		}
		build = b
	}
	var signer *string
	if v := r.Header.Get("X-Signer"); v != "" {
		if !validText(v, 128) {
			return lodestone.Errorf(lodestone.EINVALID, "X-Signer must be 1-128 printable characters")
		}
		signer = &v
	}
	notes := r.Header.Get("X-Notes")
	if len(notes) > 4096 {
		return lodestone.Errorf(lodestone.EINVALID, "X-Notes is limited to 4096 bytes")
	}
	if r.ContentLength > s.maxFirmware() {
		return lodestone.Errorf(lodestone.ETOOLARGE, "firmware over the %d byte limit", s.maxFirmware())
	}
	s.deadline(w, true, 30*time.Minute) // a large image over a slow link outlasts the server's read timeout
	ref, existed, err := s.deps.Blobs.Put(r.Context(), r.Body, s.maxFirmware())
	if err != nil {
		return err
	}
	if ref.Size == 0 {
		return lodestone.Errorf(lodestone.EINVALID, "empty body")
	}
	f := &lodestone.Firmware{Version: version, BuildID: build, SHA256: ref.SHA256, Size: ref.Size,
		Filename: firmwareFilename(version, build, ref.SHA256), Signer: signer, Notes: notes,
		CreatedAt: time.Now().UTC()}
	err = s.otaStore().CreateFirmware(r.Context(), f)
	if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
		// Artifacts are immutable: the same upload again is the stored one; anything else under the name is a
		// conflict, a FUOTA upload of the same bytes included (approve that one instead).
		old, ferr := s.otaStore().FindFirmwareByFilename(r.Context(), f.Filename)
		if ferr == nil && old.SHA256 == f.SHA256 && old.Origin != lodestone.OriginFUOTA {
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "artifact": newFirmwareJSON(old)})
			return nil
		}
	}
	if err != nil {
		if !existed {
			s.deleteBlobIfUnused(context.WithoutCancel(r.Context()), ref.SHA256)
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "artifact": newFirmwareJSON(f)})
	return nil
}

func (s *Server) deleteBlobIfUnused(ctx context.Context, sum string) {
	used, err := s.otaStore().FirmwareBlobInUse(ctx, sum)
	if err == nil && !used {
		err = s.deps.Blobs.Delete(ctx, sum)
	}
	if err != nil {
		s.log.Warn("delete firmware blob; the orphan sweep retries", "sha256", sum, "err", err)
	}
}

func (s *Server) listFirmware(w http.ResponseWriter, r *http.Request) error {
	list, err := s.otaStore().FindFirmware(r.Context())
	if err != nil {
		return err
	}
	out := make([]firmwareJSON, len(list))
	for i, f := range list {
		out[i] = newFirmwareJSON(f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"artifacts": out})
	return nil
}

func (s *Server) findFirmware(r *http.Request) (*lodestone.Firmware, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	return s.otaStore().FindFirmwareByID(r.Context(), id)
}

func (s *Server) getFirmware(w http.ResponseWriter, r *http.Request) error {
	f, err := s.findFirmware(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"artifact": newFirmwareJSON(f)})
	return nil
}

// approveFirmware lets the server sign a FUOTA upload: a provisioner vouches for these exact bytes (artifacts are
// immutable, so the approval cannot carry over to anything uploaded later under the same path).
func (s *Server) approveFirmware(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	by := ""
	if p := PrincipalFrom(r.Context()); p != nil {
		by = p.Name
	}
	f, err := s.otaStore().ApproveFirmware(r.Context(), id, by, time.Now().UTC())
	if err != nil {
		return err
	}
	s.log.Info("firmware artifact approved for signing", "id", f.ID, "sha256", f.SHA256, "origin", f.Origin,
		"by", f.ApprovedBy)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "artifact": newFirmwareJSON(f)})
	return nil
}

func (s *Server) deleteFirmware(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	f, err := s.otaStore().DeleteFirmware(r.Context(), id)
	if err != nil {
		return err
	}
	if s.deps.Blobs != nil {
		s.deleteBlobIfUnused(r.Context(), f.SHA256)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// downloadFirmware streams the image from blob storage. http.ServeContent answers Range (206), If-Range,
// If-None-Match and HEAD from the ETag (the SHA-256), so an interrupted download resumes where it stopped.
func (s *Server) downloadFirmware(w http.ResponseWriter, r *http.Request) error {
	f, err := s.deviceFirmware(r)
	if err != nil {
		return err
	}
	if s.deps.Blobs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "no blob storage configured")
	}
	b, err := s.deps.Blobs.Open(r.Context(), f.SHA256)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return lodestone.Errorf(lodestone.ENOTFOUND, "firmware file missing from storage")
	} else if err != nil {
		return err
	}
	defer b.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+f.Filename+`"`)
	h.Set("X-Firmware-SHA256", f.SHA256)
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("Cache-Control", "private, max-age=0, must-revalidate")
	if _, sig, ok := s.deps.OTA.Manifest(f); ok {
		h.Set("X-Firmware-Signature", sig)
	}
	// Minutes per image at a few KiB/s is normal for a device; the server's write timeout is for API calls.
	s.deadline(w, false, time.Hour)
	http.ServeContent(w, r, "", f.CreatedAt, b)
	return nil
}

func (s *Server) firmwareManifest(w http.ResponseWriter, r *http.Request) error {
	f, err := s.deviceFirmware(r)
	if err != nil {
		return err
	}
	payload, sig, ok := s.deps.OTA.Manifest(f)
	if !ok && s.deps.OTA.PublicKey() != nil {
		return lodestone.Errorf(lodestone.ENOTFOUND, "artifact %d was uploaded through FUOTA and is not approved "+
			"for signing (POST /ota/firmware/%d/approve)", f.ID, f.ID)
	} else if !ok {
		return lodestone.Errorf(lodestone.ENOTFOUND, "manifest signing is not configured")
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifest": string(payload), "signature": sig,
		"algorithm": "ed25519"})
	return nil
}

// deviceFirmware is the artifact of the path's id, for a device route: a device key may fetch only the artifact
// its own device's target names (by id, or by its download URL); the ingest key speaks for the whole fleet.
func (s *Server) deviceFirmware(r *http.Request) (*lodestone.Firmware, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	if p := PrincipalFrom(r.Context()); p != nil && p.DeviceID != "" {
		t, err := s.otaStore().FindTarget(r.Context(), p.DeviceID)
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return nil, err
		}
		if !targets(t, id) {
			return nil, lodestone.Errorf(lodestone.EFORBIDDEN,
				"this device key may download only the artifact targeted at device %q", p.DeviceID)
		}
	}
	return s.otaStore().FindFirmwareByID(r.Context(), id)
}

// targets reports whether target t names artifact id.
func targets(t *lodestone.OTATarget, id int64) bool {
	switch {
	case t == nil:
		return false
	case t.FirmwareID != nil:
		return *t.FirmwareID == id
	case t.FirmwareURL != nil:
		u, err := url.Parse(*t.FirmwareURL)
		return err == nil && strings.HasSuffix(u.Path, ota.DownloadURL(id)) // under a path prefix too
	}
	return false
}
