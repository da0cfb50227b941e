package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
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
}

func newFirmwareJSON(f *lodestone.Firmware) firmwareJSON {
	return firmwareJSON{ID: f.ID, Version: f.Version, BuildID: int64(f.BuildID), SHA256: f.SHA256, Size: f.Size,
		Filename: f.Filename, Signer: f.Signer, CreatedAt: ts(f.CreatedAt), Notes: f.Notes, BuildIDU: f.BuildID}
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
		old, ferr := s.otaStore().FindFirmwareByFilename(r.Context(), f.Filename)
		if ferr == nil && old.SHA256 == f.SHA256 {
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
	if used, err := s.otaStore().FirmwareBlobInUse(ctx, sum); err != nil || used {
		return
	}
	if err := s.deps.Blobs.Delete(ctx, sum); err != nil {
		s.log.Warn("delete firmware blob", "sha256", sum, "err", err)
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
	f, err := s.findFirmware(r)
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
	f, err := s.findFirmware(r)
	if err != nil {
		return err
	}
	payload, sig, ok := s.deps.OTA.Manifest(f)
	if !ok {
		return lodestone.Errorf(lodestone.ENOTFOUND, "manifest signing is not configured")
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifest": string(payload), "signature": sig,
		"algorithm": "ed25519"})
	return nil
}
