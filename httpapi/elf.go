package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// MaxELFBytes is ferrite's limit for POST /ingest/elf.
const MaxELFBytes = 50 << 20

// Symbolicator is what the ELF routes need of the symbolication workers.
type Symbolicator interface {
	// Notify wakes the workers: an ELF arrived, waiting faults may now resolve.
	Notify()
	// Forget drops the cached index of a blob.
	Forget(sha256 string)
	// Inspect indexes the ELF in a blob and returns its GNU build id (hex and as a device's u64) and the firmware
	// version it embeds, or an EINVALID error for a file that is not a usable ARM ELF.
	Inspect(ctx context.Context, sha256 string) (buildID string, buildID64 uint64, version string, err error)
}

type elfJSON struct {
	ID        int64  `json:"id"`
	Version   string `json:"version"`
	BuildID   string `json:"build_id"`
	BuildID64 string `json:"build_id64"` // 16 hex digits, as a device's DeviceInfo build_id reads in hex
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	Filename  string `json:"filename"`
	CreatedAt string `json:"created_at"`
}

func newELFJSON(e *lodestone.ELF) elfJSON {
	return elfJSON{ID: e.ID, Version: e.Version, BuildID: e.BuildID, BuildID64: fmt.Sprintf("%016x", e.BuildID64),
		SHA256: e.Blob.SHA256, Size: e.Blob.Size, Filename: e.Filename, CreatedAt: ts(e.CreatedAt)}
}

func (s *Server) elfReady() error {
	if s.deps.ELFs == nil || s.deps.Blobs == nil || s.deps.Symbols == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "symbolication is not configured on this server")
	}
	return nil
}

// uploadELF implements POST /ingest/elf: ferrite's raw body and X-Firmware-Version header, streamed into blob
// storage. Unlike ferrite the file is checked (an ARM ELF) and filed under its GNU build id as well, and the
// version is never used as a path. Without the header the version the firmware embeds is used, else "unknown".
func (s *Server) uploadELF(w http.ResponseWriter, r *http.Request) error {
	if err := s.elfReady(); err != nil {
		return err
	}
	version := r.Header.Get("X-Firmware-Version")
	if version != "" && !validVersion(version) {
		return lodestone.Errorf(lodestone.EINVALID, "X-Firmware-Version must be 1-128 visible ASCII characters "+
			`without '/', '\' or '"': a version, not a path`)
	}
	if r.ContentLength > MaxELFBytes {
		return lodestone.Errorf(lodestone.ETOOLARGE, "ELF exceeds the %d byte limit", MaxELFBytes)
	}
	body := http.MaxBytesReader(w, r.Body, MaxELFBytes)
	ref, existed, err := s.deps.Blobs.Put(r.Context(), body, MaxELFBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return lodestone.Errorf(lodestone.ETOOLARGE, "ELF exceeds the %d byte limit", MaxELFBytes)
		}
		return err
	}
	if ref.Size == 0 {
		return lodestone.Errorf(lodestone.EINVALID, "empty body: send the ELF file's bytes")
	}
	buildID, build64, embedded, err := s.deps.Symbols.Inspect(r.Context(), ref.SHA256)
	if err != nil {
		if !existed {
			if err := s.deps.Blobs.Delete(context.WithoutCancel(r.Context()), ref.SHA256); err != nil {
				s.log.Warn("delete the blob of a refused ELF; the orphan sweep retries", "sha256", ref.SHA256, "err", err)
			}
		}
		return err
	}
	switch {
	case version != "":
	case validVersion(embedded): // the file's own text is as untrusted as the header
		version = embedded
	default:
		version = "unknown" // ferrite's default
	}
	filename := version + ".elf"
	if n := r.Header.Get("X-Filename"); validVersion(n) {
		filename = n
	}
	e := &lodestone.ELF{Version: version, BuildID: buildID, BuildID64: build64, Blob: ref, Filename: filename}
	if err := s.deps.ELFs.CreateELF(r.Context(), e); err != nil {
		return err
	}
	s.deps.Symbols.Notify()
	s.log.Info("ELF uploaded", "id", e.ID, "version", e.Version, "build_id", e.BuildID, "size", ref.Size)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "path": "/elfs/" + strconv.FormatInt(e.ID, 10),
		"elf": newELFJSON(e)})
	return nil
}

// validVersion is the rule for a firmware version (and an ELF's file name): a device id's characters
// (validDeviceHeader: 1-128 visible ASCII) and never a path, since ferrite filed ELFs under their version.
func validVersion(v string) bool {
	return validDeviceHeader(v) && !strings.ContainsAny(v, `/\"`)
}

func (s *Server) listELFs(w http.ResponseWriter, r *http.Request) error {
	if err := s.elfReady(); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := uintParam(q, "limit")
	if err != nil {
		return err
	}
	offset, err := uintParam(q, "offset")
	if err != nil {
		return err
	}
	elfs, err := s.deps.ELFs.FindELFs(r.Context(), limit, offset)
	if err != nil {
		return err
	}
	out := make([]elfJSON, len(elfs))
	for i, e := range elfs {
		out[i] = newELFJSON(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"elfs": out})
	return nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.EINVALID, "id must be a positive integer, got %q", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) getELF(w http.ResponseWriter, r *http.Request) error {
	if err := s.elfReady(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	e, err := s.deps.ELFs.FindELFByID(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"elf": newELFJSON(e)})
	return nil
}

// deleteELF removes an ELF; its blob goes too unless another ELF uses the same bytes. Faults already
// symbolicated with it keep their results.
func (s *Server) deleteELF(w http.ResponseWriter, r *http.Request) error {
	if err := s.elfReady(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	e, shared, err := s.deps.ELFs.DeleteELF(r.Context(), id)
	if err != nil {
		return err
	}
	if !shared {
		s.deps.Symbols.Forget(e.Blob.SHA256)
		if err := s.deps.Blobs.Delete(r.Context(), e.Blob.SHA256); err != nil {
			s.log.Warn("ELF deleted but its blob was not", "sha256", e.Blob.SHA256, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	return nil
}
