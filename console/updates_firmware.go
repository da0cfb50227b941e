package console

import (
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// artifactRow is an artifact as the pages show it.
type artifactRow struct {
	*lodestone.Firmware
	Signature string // what a device can verify: "signed", or why not
	Signed    bool
}

func (c *Console) artifactRow(f *lodestone.Firmware) artifactRow {
	row := artifactRow{Firmware: f}
	switch {
	case c.cfg.Updates.OTA.PublicKey() == nil:
		row.Signature = "unsigned: the server has no OTA_SIGNING_KEY"
	case !f.Signable():
		row.Signature = "unsigned until a provisioner approves this FUOTA upload"
	default:
		row.Signature, row.Signed = "signed (ed25519 manifest)", true
	}
	return row
}

type firmwareView struct {
	Tabs      []updTab
	Artifacts []artifactRow
	ELFs      []*lodestone.ELF
	MaxBytes  int64
	MaxELF    int64
	HasELF    bool
}

func (c *Console) maxFirmware() int64 {
	if c.cfg.Updates.MaxBytes > 0 {
		return c.cfg.Updates.MaxBytes
	}
	return httpapi.DefaultMaxFirmware
}

func (c *Console) firmwareList(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	list, err := st.FindFirmware(r.ctx())
	if err != nil {
		return err
	}
	v := firmwareView{Tabs: updTabs("/ui/updates/firmware"), MaxBytes: c.maxFirmware(), MaxELF: httpapi.MaxELFBytes}
	for _, f := range list {
		v.Artifacts = append(v.Artifacts, c.artifactRow(f))
	}
	if c.cfg.Updates.ELFs != nil && c.cfg.Updates.Symbols != nil {
		v.HasELF = true
		if v.ELFs, err = c.cfg.Updates.ELFs.FindELFs(r.ctx(), 50, 0); err != nil {
			return err
		}
	}
	c.updPage(w, r, "firmware", "Firmware", v)
	return nil
}

// firmwareUpload streams the form's file into the blob store and records the artifact, as POST /ota/firmware
// does: the same bytes, version and build again are the stored artifact.
func (c *Console) firmwareUpload(w http.ResponseWriter, r *request, mr *multipart.Reader) error {
	const back = "/ui/updates/firmware"
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	if c.cfg.Updates.Blobs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "no blob storage configured")
	}
	refuse := func(msg string) error {
		c.redirect(w, r.Request, back, flash{Msg: "Not uploaded: " + msg, Err: true})
		return nil
	}
	if r.ContentLength > c.maxFirmware()+64<<10 {
		return refuse(fmt.Sprintf("the image is over the %s limit", humanBytes(c.maxFirmware())))
	}
	fields, part, err := uploadForm(mr)
	if err != nil {
		return refuse(lodestone.ErrorMessage(err))
	}
	if part == nil || part.FileName() == "" {
		return refuse("choose a firmware image to upload")
	}
	defer part.Close()
	version := strings.TrimSpace(fields["version"])
	if !validLabel(version, 64) {
		return refuse("the version must be 1-64 printable characters without quotes, slashes or backslashes")
	}
	var build uint64
	if v := strings.TrimSpace(fields["build_id"]); v != "" {
		if build, err = strconv.ParseUint(v, 10, 64); err != nil {
			return refuse("the build id must be an unsigned decimal integer")
		}
	}
	var signer *string
	if v := strings.TrimSpace(fields["signer"]); v != "" {
		if !validLabel(v, 128) {
			return refuse("the signer must be 1-128 printable characters")
		}
		signer = &v
	}
	notes := strings.TrimSpace(fields["notes"])
	ref, existed, err := c.cfg.Updates.Blobs.Put(r.ctx(), part, c.maxFirmware())
	if err != nil {
		if lodestone.ErrorCode(err) == lodestone.ETOOLARGE {
			return refuse(fmt.Sprintf("the image is over the %s limit", humanBytes(c.maxFirmware())))
		}
		return err
	}
	if ref.Size == 0 {
		return refuse("the file is empty")
	}
	f := &lodestone.Firmware{Version: version, BuildID: build, SHA256: ref.SHA256, Size: ref.Size,
		Filename: fmt.Sprintf("%s-b%d-%s.bin", version, build, ref.SHA256[:8]), Signer: signer, Notes: notes,
		CreatedAt: time.Now().UTC()}
	err = st.CreateFirmware(r.ctx(), f)
	if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
		old, ferr := st.FindFirmwareByFilename(r.ctx(), f.Filename)
		if ferr == nil && old.SHA256 == f.SHA256 && old.Origin != lodestone.OriginFUOTA {
			c.redirect(w, r.Request, "/ui/updates/firmware/"+itoa(old.ID),
				flash{Msg: "These bytes were already uploaded as " + old.Version + "; nothing changed."})
			return nil
		}
	}
	if err != nil {
		if !existed {
			c.deleteBlobIfUnused(context.WithoutCancel(r.ctx()), ref.SHA256)
		}
		if code := lodestone.ErrorCode(err); code == lodestone.ECONFLICT || code == lodestone.EINVALID {
			return refuse(lodestone.ErrorMessage(err))
		}
		return err
	}
	c.log.Info("firmware artifact uploaded", "id", f.ID, "version", f.Version, "size", f.Size, "via", "console",
		"user", r.user.Name)
	c.redirect(w, r.Request, "/ui/updates/firmware/"+itoa(f.ID),
		flash{Msg: fmt.Sprintf("Uploaded %s (%s, SHA-256 %s…).", f.Version, humanBytes(f.Size), f.SHA256[:12])})
	return nil
}

func (c *Console) deleteBlobIfUnused(ctx context.Context, sum string) {
	st, err := c.otaStore()
	if err != nil {
		return
	}
	used, err := st.FirmwareBlobInUse(ctx, sum)
	if err == nil && !used {
		err = c.cfg.Updates.Blobs.Delete(ctx, sum)
	}
	if err != nil {
		c.log.Warn("delete firmware blob; the orphan sweep retries", "sha256", sum, "err", err)
	}
}

type artifactView struct {
	Tabs      []updTab
	A         artifactRow
	Campaigns []*lodestone.Campaign // campaigns that install it
	Targets   int                   // device targets that name it
	FUOTA     int                   // of those, ESP32 FUOTA rows
	Download  string
}

func (c *Console) findArtifact(r *request) (lodestone.OTAStore, *lodestone.Firmware, error) {
	st, err := c.otaStore()
	if err != nil {
		return nil, nil, err
	}
	id, err := pathInt64(r, "firmware artifact")
	if err != nil {
		return nil, nil, err
	}
	f, err := st.FindFirmwareByID(r.ctx(), id)
	return st, f, err
}

func (c *Console) artifact(w http.ResponseWriter, r *request) error {
	st, f, err := c.findArtifact(r)
	if err != nil {
		return err
	}
	v := artifactView{Tabs: updTabs("/ui/updates/firmware"), A: c.artifactRow(f),
		Download: "/ui/updates/firmware/" + itoa(f.ID) + "/download"}
	camps, err := st.FindCampaigns(r.ctx())
	if err != nil {
		return err
	}
	for _, cp := range camps {
		if cp.FirmwareID == f.ID {
			v.Campaigns = append(v.Campaigns, cp)
		}
	}
	targets, err := st.FindTargets(r.ctx())
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.FirmwareID != nil && *t.FirmwareID == f.ID {
			v.Targets++
			if t.Origin == lodestone.OriginFUOTA {
				v.FUOTA++
			}
		}
	}
	c.updPage(w, r, "artifact", "Firmware "+f.Version, v)
	return nil
}

// artifactDownload streams the image from blob storage, resumable (Range, ETag = SHA-256) like the API's.
func (c *Console) artifactDownload(w http.ResponseWriter, r *request) error {
	_, f, err := c.findArtifact(r)
	if err != nil {
		return err
	}
	if c.cfg.Updates.Blobs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "no blob storage configured")
	}
	b, err := c.cfg.Updates.Blobs.Open(r.ctx(), f.SHA256)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return lodestone.Errorf(lodestone.ENOTFOUND, "the firmware file is missing from storage")
	} else if err != nil {
		return err
	}
	defer b.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	// The name is the store's (version-bbuild-sha8.bin or a FUOTA path); keep only safe characters in the header.
	h.Set("Content-Disposition", `attachment; filename="`+safeFilename(f.Filename)+`"`)
	h.Set("X-Firmware-SHA256", f.SHA256)
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("Cache-Control", "private, max-age=0, must-revalidate")
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	http.ServeContent(w, r.Request, "", f.CreatedAt, b)
	return nil
}

func safeFilename(s string) string {
	var b strings.Builder
	for _, ch := range s {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', strings.ContainsRune("._-~+", ch):
			b.WriteRune(ch)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "firmware.bin"
	}
	return b.String()
}

// artifactDelete deletes an artifact; one in use is refused with the store's reason on the artifact's page.
func (c *Console) artifactDelete(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	id, err := pathInt64(r, "firmware artifact")
	if err != nil {
		return err
	}
	f, err := st.DeleteFirmware(r.ctx(), id)
	if err != nil {
		if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
			c.redirect(w, r.Request, "/ui/updates/firmware/"+itoa(id),
				flash{Msg: "Not deleted: " + lodestone.ErrorMessage(err) + ". Clear those first.", Err: true})
			return nil
		}
		return err
	}
	if c.cfg.Updates.Blobs != nil {
		c.deleteBlobIfUnused(r.ctx(), f.SHA256)
	}
	c.redirect(w, r.Request, "/ui/updates/firmware", flash{Msg: "Deleted firmware " + f.Version + " (" + f.Filename + ")."})
	return nil
}

// artifactApprove lets the server sign a FUOTA upload (POST /ota/firmware/{id}/approve).
func (c *Console) artifactApprove(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	id, err := pathInt64(r, "firmware artifact")
	if err != nil {
		return err
	}
	f, err := st.ApproveFirmware(r.ctx(), id, r.user.Name, time.Now().UTC())
	if err != nil {
		return err
	}
	c.redirect(w, r.Request, "/ui/updates/firmware/"+itoa(f.ID),
		flash{Msg: "Approved for signing: devices now get this upload's signed manifest."})
	return nil
}

// elfUpload stores a symbol file for a firmware version, as POST /ingest/elf does: checked to be an ARM ELF,
// filed under its GNU build id, waiting faults symbolicated again.
func (c *Console) elfUpload(w http.ResponseWriter, r *request, mr *multipart.Reader) error {
	const back = "/ui/updates/firmware"
	u := c.cfg.Updates
	if u.ELFs == nil || u.Blobs == nil || u.Symbols == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "symbolication is not configured on this server")
	}
	refuse := func(msg string) error {
		c.redirect(w, r.Request, back+"#elf", flash{Msg: "ELF not uploaded: " + msg, Err: true})
		return nil
	}
	fields, part, err := uploadForm(mr)
	if err != nil {
		return refuse(lodestone.ErrorMessage(err))
	}
	if part == nil || part.FileName() == "" {
		return refuse("choose an ELF file")
	}
	defer part.Close()
	version := strings.TrimSpace(fields["version"])
	if version != "" && (!validLabel(version, 128) || !printableASCII(version)) {
		return refuse("the version must be 1-128 visible ASCII characters without quotes, slashes or backslashes")
	}
	ref, existed, err := u.Blobs.Put(r.ctx(), part, httpapi.MaxELFBytes)
	if err != nil {
		if lodestone.ErrorCode(err) == lodestone.ETOOLARGE {
			return refuse(fmt.Sprintf("the file is over the %s limit", humanBytes(httpapi.MaxELFBytes)))
		}
		return err
	}
	if ref.Size == 0 {
		return refuse("the file is empty")
	}
	buildID, build64, embedded, err := u.Symbols.Inspect(r.ctx(), ref.SHA256)
	if err != nil {
		if !existed {
			if derr := u.Blobs.Delete(context.WithoutCancel(r.ctx()), ref.SHA256); derr != nil {
				c.log.Warn("delete the blob of a refused ELF; the orphan sweep retries", "sha256", ref.SHA256, "err", derr)
			}
		}
		if lodestone.ErrorCode(err) == lodestone.EINVALID {
			return refuse(lodestone.ErrorMessage(err))
		}
		return err
	}
	switch {
	case version != "":
	case validLabel(embedded, 128) && printableASCII(embedded):
		version = embedded
	default:
		version = "unknown"
	}
	name := safeFilename(part.FileName())
	e := &lodestone.ELF{Version: version, BuildID: buildID, BuildID64: build64, Blob: ref, Filename: name}
	if err := u.ELFs.CreateELF(r.ctx(), e); err != nil {
		return err
	}
	u.Symbols.Notify()
	c.redirect(w, r.Request, back+"#elf", flash{Msg: fmt.Sprintf("Uploaded symbols for %s (%s); faults of that "+
		"firmware are symbolicated with them.", version, humanBytes(ref.Size))})
	return nil
}
