package httpapi

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ddi"
	"github.com/lodestone-fleet/lodestone/ota"
)

// routesDDI registers Eclipse hawkBit's Direct Device Integration API, v1: SWUpdate, RAUC's hawkBit updater and
// Zephyr's hawkBit client poll it. A controller is a lodestone device (controllerId = device_id) and a deployment
// is its OTA target, so targets and campaign waves reach it as they reach ferrite devices.
func (s *Server) routesDDI() {
	const base = "/{tenant}/controller/v1/{controllerId}"
	s.handleDDI("GET "+base, s.ddiRoot)
	s.handleDDI("GET "+base+"/deploymentBase/{actionId}", s.ddiDeployment)
	s.handleDDI("POST "+base+"/deploymentBase/{actionId}/feedback", s.ddiFeedback)
	s.handleDDI("GET "+base+"/cancelAction/{actionId}", s.ddiCancel)
	s.handleDDI("POST "+base+"/cancelAction/{actionId}/feedback", s.ddiCancelFeedback)
	s.handleDDI("PUT "+base+"/configData", s.ddiConfigData)
	s.handleDDI("GET "+base+"/softwaremodules/{moduleId}/artifacts", s.ddiArtifacts)
	s.handleDDI("GET "+base+"/softwaremodules/{moduleId}/artifacts/{fileName}", s.ddiDownload)

	s.handle("GET /devices/{id}/attributes", AccessViewer, s.deviceAttributes)
	s.handle("GET /devices/{id}/ddi-actions", AccessViewer, s.deviceDDIActions)
}

// ddiBase is the absolute URL of the controller's resources, for links: clients follow them as given.
func (s *Server) ddiBase(r *http.Request, https bool) string {
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/" + url.PathEscape(r.PathValue("tenant")) + "/controller/v1/" +
		url.PathEscape(r.PathValue("controllerId"))
}

// overTLS reports whether the client reached us over HTTPS: directly, or through a trusted proxy that says so.
func (s *Server) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	return err == nil && len(s.cfg.TrustedProxies) > 0 && s.trusted(host) &&
		strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// links returns the HAL links of one resource path: hawkBit's "name" is the HTTPS link and "name-http" the plain
// one. SWUpdate follows the first when present, Zephyr always the second (taking only its path), so the
// second is always given and the first only when the client came over HTTPS.
func (s *Server) links(r *http.Request, name, path string) map[string]ddi.Link {
	tls := s.overTLS(r)
	out := map[string]ddi.Link{name + "-http": {Href: s.ddiBase(r, false) + path}}
	if tls {
		out[name] = ddi.Link{Href: s.ddiBase(r, true) + path}
	}
	return out
}

// contact records the poll as the device's contact (created on first poll, online, last seen; at most every
// contactEvery), and info, when given, as the firmware it now runs (always). A failure is logged: the answer does
// not depend on it.
func (s *Server) contact(r *http.Request, info *lodestone.DeviceInfo) {
	if s.deps.Ingest == nil {
		return
	}
	dev, now := r.PathValue("controllerId"), time.Now().UTC()
	if s.ddi.recent(dev, now) && info == nil {
		return
	}
	if err := s.deps.Ingest.Contact(r.Context(), dev, info, now); err != nil {
		s.logFor(r).Warn("record DDI contact", "device", dev, "err", err)
	}
}

func (s *Server) ddiRoot(w http.ResponseWriter, r *http.Request) error {
	d := s.deps.OTA.DDI()
	dev := r.PathValue("controllerId")
	s.contact(r, nil)
	offer, cancel, err := d.Poll(r.Context(), dev)
	if err != nil {
		return err
	}
	root := ddi.Root{Config: ddi.Config{Polling: ddi.Polling{Sleep: ddi.Sleep(s.cfg.DDI.PollInterval)}},
		Links: map[string]ddi.Link{}}
	base := s.ddiBase(r, s.overTLS(r))
	switch {
	case cancel != nil:
		root.Links["cancelAction"] = ddi.Link{Href: base + "/cancelAction/" + strconv.FormatInt(cancel.ID, 10)}
	case offer != nil:
		// hawkBit adds a checksum of the action's content so that a changed deployment is a changed URL.
		h := fnv.New32a()
		fmt.Fprintf(h, "%d/%d/%s", offer.ID, offer.FirmwareID, offer.Version)
		root.Links["deploymentBase"] = ddi.Link{Href: base + "/deploymentBase/" + strconv.FormatInt(offer.ID, 10) +
			"?c=" + strconv.FormatUint(uint64(h.Sum32()), 10)}
	}
	// Ask for attributes until the device has sent some: clients such as SWUpdate send them whenever the link is
	// there, so it is not offered on every poll.
	attrs, err := d.Store().DeviceAttributes(r.Context(), dev)
	if err != nil {
		return err
	}
	if len(attrs) == 0 {
		root.Links["configData"] = ddi.Link{Href: base + "/configData"}
	}
	writeJSON(w, http.StatusOK, root)
	return nil
}

// ddiActionID reads the action id of the path.
func ddiActionID(r *http.Request) (int64, error) {
	id, err := ddi.ParseActionID(r.PathValue("actionId"))
	if err != nil {
		return 0, lodestone.Errorf(lodestone.EINVALID, "%v", err)
	}
	return id, nil
}

func (s *Server) ddiDeployment(w http.ResponseWriter, r *http.Request) error {
	id, err := ddiActionID(r)
	if err != nil {
		return err
	}
	a, f, err := s.deps.OTA.DDI().Deployment(r.Context(), r.PathValue("controllerId"), id)
	if err != nil {
		return err
	}
	art, kind, err := s.ddiArtifact(w, r, f)
	if err != nil {
		return err
	}
	// hawkBit's module types: "os" for an operating system image, "bApp" for an application; Zephyr's client
	// accepts only bApp, which an MCU image (neither a .swu nor a RAUC bundle) is.
	part := "os"
	if kind == "" {
		part = "bApp"
	}
	writeJSON(w, http.StatusOK, ddi.DeploymentBase{ID: strconv.FormatInt(a.ID, 10), Deployment: ddi.Deployment{
		Download: ddi.Forced, Update: ddi.Forced,
		Chunks: []ddi.Chunk{{Part: part, Version: a.Version, Name: strings.TrimSuffix(art.Filename,
			"."+extOf(art.Filename)), Artifacts: []ddi.Artifact{art}}},
	}})
	return nil
}

func extOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// ddiArtifact describes artifact f to the controller, computing its MD5 and SHA-1 on first use, and returns the
// kind of image it holds.
func (s *Server) ddiArtifact(w http.ResponseWriter, r *http.Request, f *lodestone.Firmware) (ddi.Artifact, string,
	error) {
	h, err := s.blobHashes(w, r.Context(), f)
	if err != nil {
		return ddi.Artifact{}, "", err
	}
	name := ddiFilename(f, h.Kind)
	path := "/softwaremodules/" + strconv.FormatInt(f.ID, 10) + "/artifacts/" + url.PathEscape(name)
	links := s.links(r, "download", path)
	for k, v := range s.links(r, "md5sum", path+".MD5SUM") {
		links[k] = v
	}
	return ddi.Artifact{Filename: name, Size: f.Size, Hashes: ddi.Hashes{SHA1: h.SHA1, MD5: h.MD5, SHA256: f.SHA256},
		Links: links}, h.Kind, nil
}

// ddiFilename is the file name a controller sees for an artifact: its stored name when that is one path segment
// (a FUOTA upload is named by a path), with the extension of the kind of image it holds, since clients choose
// files by it (SWUpdate installs only *.swu).
func ddiFilename(f *lodestone.Firmware, kind string) string {
	name := f.Filename
	if !validText(name, 200) {
		name = "firmware-" + strconv.FormatInt(f.ID, 10) + ".bin"
	}
	if kind != "" && !strings.HasSuffix(name, "."+kind) {
		name = strings.TrimSuffix(name, ".bin") + "." + kind
	}
	return name
}

// blobHashes returns the MD5, SHA-1 and image kind of the artifact's bytes, reading the blob once, the first time
// any controller is offered it (artifacts are immutable, so the result is kept by SHA-256).
func (s *Server) blobHashes(w http.ResponseWriter, ctx context.Context, f *lodestone.Firmware) (lodestone.BlobHashes,
	error) {
	st := s.deps.OTA.DDI().Store()
	h, err := st.BlobHashes(ctx, f.SHA256)
	if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		return h, err
	}
	if s.deps.Blobs == nil {
		return h, lodestone.Errorf(lodestone.EUNAVAILABLE, "no blob storage configured")
	}
	s.deadline(w, false, 10*time.Minute) // a large image is read in full once
	b, err := s.deps.Blobs.Open(ctx, f.SHA256)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return h, lodestone.Errorf(lodestone.ENOTFOUND, "firmware file missing from storage")
	} else if err != nil {
		return h, err
	}
	defer b.Close()
	m, s1, s256 := md5.New(), sha1.New(), sha256.New()
	head := &headWriter{n: 6}
	if _, err := io.Copy(io.MultiWriter(m, s1, s256, head), b); err != nil {
		return h, fmt.Errorf("hash firmware %d: %w", f.ID, err)
	}
	if got := hex.EncodeToString(s256.Sum(nil)); got != f.SHA256 {
		return h, lodestone.Errorf(lodestone.EINTERNAL, "firmware %d: stored bytes do not match its SHA-256", f.ID)
	}
	h = lodestone.BlobHashes{MD5: hex.EncodeToString(m.Sum(nil)), SHA1: hex.EncodeToString(s1.Sum(nil)),
		Kind: imageKind(head.b)}
	return h, st.SaveBlobHashes(ctx, f.SHA256, h)
}

// headWriter keeps the first n bytes written to it.
type headWriter struct {
	n int
	b []byte
}

func (h *headWriter) Write(p []byte) (int, error) {
	if k := h.n - len(h.b); k > 0 {
		h.b = append(h.b, p[:min(k, len(p))]...)
	}
	return len(p), nil
}

// imageKind names an image by its magic: a cpio archive (newc or crc) is an SWUpdate image, a squashfs a RAUC
// bundle.
func imageKind(head []byte) string {
	switch {
	case strings.HasPrefix(string(head), "070701"), strings.HasPrefix(string(head), "070702"):
		return "swu"
	case strings.HasPrefix(string(head), "hsqs"):
		return "raucb"
	}
	return ""
}

// readFeedback reads and checks a deployment or cancel feedback.
func readFeedback(w http.ResponseWriter, r *http.Request) (lodestone.DDIFeedback, error) {
	var in ddi.Feedback
	if err := DecodeJSON(w, r, &in, 64<<10); err != nil {
		return lodestone.DDIFeedback{}, err
	}
	detail, err := in.Validate()
	if err != nil {
		return lodestone.DDIFeedback{}, lodestone.Errorf(lodestone.EINVALID, "%v", err)
	}
	return lodestone.DDIFeedback{Execution: in.Status.Execution, Finished: in.Status.Result.Finished,
		Detail: detail}, nil
}

func (s *Server) ddiFeedback(w http.ResponseWriter, r *http.Request) error {
	id, err := ddiActionID(r)
	if err != nil {
		return err
	}
	fb, err := readFeedback(w, r)
	if err != nil {
		return err
	}
	a, err := s.deps.OTA.DDI().Feedback(r.Context(), r.PathValue("controllerId"), id, fb)
	if err != nil {
		return err
	}
	if a.Status == lodestone.DDIClosed && a.Result == "success" {
		info := &lodestone.DeviceInfo{FirmwareVersion: a.Version}
		if f, err := s.otaStore().FindFirmwareByID(r.Context(), a.FirmwareID); err == nil {
			info.BuildID = f.BuildID
		}
		s.contact(r, info)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) ddiCancel(w http.ResponseWriter, r *http.Request) error {
	id, err := ddiActionID(r)
	if err != nil {
		return err
	}
	a, err := s.deps.OTA.DDI().Store().FindDDIAction(r.Context(), r.PathValue("controllerId"), id)
	if err != nil {
		return err
	}
	if a.Status != lodestone.DDICanceling && a.Status != lodestone.DDICanceled {
		return lodestone.Errorf(lodestone.ENOTFOUND, "action %d has no cancel request", id)
	}
	writeJSON(w, http.StatusOK, ddi.NewCancelAction(a.ID))
	return nil
}

func (s *Server) ddiCancelFeedback(w http.ResponseWriter, r *http.Request) error {
	id, err := ddiActionID(r)
	if err != nil {
		return err
	}
	fb, err := readFeedback(w, r)
	if err != nil {
		return err
	}
	if _, err := s.deps.OTA.DDI().CancelFeedback(r.Context(), r.PathValue("controllerId"), id, fb); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// configDataBody decodes ddi.ConfigData without the API decoder calling its Validate, which is called here, so
// that its error becomes a 400.
type configDataBody ddi.ConfigData

func (s *Server) ddiConfigData(w http.ResponseWriter, r *http.Request) error {
	var in ddi.ConfigData
	if err := DecodeJSON(w, r, (*configDataBody)(&in), 64<<10); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return lodestone.Errorf(lodestone.EINVALID, "%v", err)
	}
	s.contact(r, nil)
	if err := s.deps.OTA.DDI().Store().SetDeviceAttributes(r.Context(), r.PathValue("controllerId"), in.Mode,
		in.Data, time.Now().UTC()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// ddiModule returns the artifact of the path's software module, when the controller may have it: the artifact of
// its open action or of its current OTA target. Anything else is a 403, whoever asks.
func (s *Server) ddiModule(r *http.Request) (*lodestone.Firmware, error) {
	id, err := strconv.ParseInt(r.PathValue("moduleId"), 10, 64)
	if err != nil || id <= 0 {
		return nil, lodestone.Errorf(lodestone.EINVALID, "moduleId must be a positive integer")
	}
	dev := r.PathValue("controllerId")
	offer, _, err := s.deps.OTA.DDI().Poll(r.Context(), dev)
	if err != nil {
		return nil, err
	}
	if offer == nil || offer.FirmwareID != id {
		t, err := s.otaStore().FindTarget(r.Context(), dev)
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return nil, err
		}
		if !targets(t, id) || t.FirmwareID == nil {
			return nil, lodestone.Errorf(lodestone.EFORBIDDEN,
				"software module %d is not assigned to controller %q", id, dev)
		}
	}
	return s.otaStore().FindFirmwareByID(r.Context(), id)
}

func (s *Server) ddiArtifacts(w http.ResponseWriter, r *http.Request) error {
	f, err := s.ddiModule(r)
	if err != nil {
		return err
	}
	art, _, err := s.ddiArtifact(w, r, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, []ddi.Artifact{art})
	return nil
}

// ddiDownload serves an artifact (with Range, If-Range and ETag, so an interrupted download resumes) or its
// MD5SUM file.
func (s *Server) ddiDownload(w http.ResponseWriter, r *http.Request) error {
	f, err := s.ddiModule(r)
	if err != nil {
		return err
	}
	h, err := s.blobHashes(w, r.Context(), f)
	if err != nil {
		return err
	}
	name, file := ddiFilename(f, h.Kind), r.PathValue("fileName")
	if file == name+".MD5SUM" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s  %s\n", h.MD5, name)
		return nil
	}
	if file != name {
		return lodestone.Errorf(lodestone.ENOTFOUND, "software module %d has no artifact %q (it has %q)", f.ID,
			file, name)
	}
	b, err := s.deps.Blobs.Open(r.Context(), f.SHA256)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return lodestone.Errorf(lodestone.ENOTFOUND, "firmware file missing from storage")
	} else if err != nil {
		return err
	}
	defer b.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	hd.Set("ETag", `"`+f.SHA256+`"`)
	hd.Set("Cache-Control", "private, max-age=0, must-revalidate")
	s.deadline(w, false, time.Hour) // devices on slow links take minutes per image
	http.ServeContent(w, r, "", f.CreatedAt, b)
	return nil
}

type ddiActionJSON struct {
	ID          int64   `json:"id"`
	FirmwareID  int64   `json:"firmware_id"`
	Version     string  `json:"version"`
	CampaignID  *int64  `json:"campaign_id"`
	Status      string  `json:"status"`
	Result      string  `json:"result"`
	Execution   string  `json:"execution"`
	Detail      string  `json:"detail"`
	RetrievedAt *string `json:"retrieved_at"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// deviceDDIActions answers GET /devices/{id}/ddi-actions: the deployments offered to a DDI controller and what
// it reported, newest first.
func (s *Server) deviceDDIActions(w http.ResponseWriter, r *http.Request) error {
	d, err := s.ddiSide()
	if err != nil {
		return err
	}
	limit, err := uintParam(r.URL.Query(), "limit")
	if err != nil {
		return err
	}
	if limit == 0 || limit > lodestone.MaxListLimit {
		limit = min(max(limit, 100), lodestone.MaxListLimit)
	}
	list, err := d.Store().FindDDIActions(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	out := make([]ddiActionJSON, len(list))
	for i, a := range list {
		out[i] = ddiActionJSON{ID: a.ID, FirmwareID: a.FirmwareID, Version: a.Version, CampaignID: a.CampaignID,
			Status: a.Status, Result: a.Result, Execution: a.Execution, Detail: a.Detail, CreatedAt: ts(a.CreatedAt),
			UpdatedAt: ts(a.UpdatedAt)}
		if a.RetrievedAt != nil {
			t := ts(*a.RetrievedAt)
			out[i].RetrievedAt = &t
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": out})
	return nil
}

// ddiSide is the OTA service's DDI side, or a 503 when it is not wired.
func (s *Server) ddiSide() (*ota.DDI, error) {
	if s.deps.OTA != nil {
		if d := s.deps.OTA.DDI(); d != nil {
			return d, nil
		}
	}
	return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "hawkBit DDI is not enabled on this server")
}

// deviceAttributes answers GET /devices/{id}/attributes: what the device reported about itself (DDI configData).
func (s *Server) deviceAttributes(w http.ResponseWriter, r *http.Request) error {
	d, err := s.ddiSide()
	if err != nil {
		return err
	}
	attrs, err := d.Store().DeviceAttributes(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device_id": r.PathValue("id"), "attributes": attrs})
	return nil
}
