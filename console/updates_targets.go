package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// maxTargetRows bounds the targets table; the API's GET /ota/targets lists them all.
const maxTargetRows = 500

type targetRow struct {
	*lodestone.OTATarget
	FUOTA bool
}

type targetsView struct {
	Tabs      []updTab
	Targets   []targetRow
	More      int
	Artifacts []*lodestone.Firmware
	Groups    []*lodestone.Group
	Device    string // prefilled device id (?device=)
}

func (c *Console) targetsPage(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	ts, err := st.FindTargets(r.ctx())
	if err != nil {
		return err
	}
	v := targetsView{Tabs: updTabs("/ui/updates/targets"), Device: r.URL.Query().Get("device")}
	if len(ts) > maxTargetRows {
		v.More, ts = len(ts)-maxTargetRows, ts[:maxTargetRows]
	}
	for _, t := range ts {
		v.Targets = append(v.Targets, targetRow{OTATarget: t, FUOTA: t.Origin == lodestone.OriginFUOTA})
	}
	if v.Artifacts, err = st.FindFirmware(r.ctx()); err != nil {
		return err
	}
	if g := c.updGroups(); g != nil {
		if v.Groups, err = g.FindGroups(r.ctx()); err != nil {
			return err
		}
	}
	c.updPage(w, r, "targets", "Update targets", v)
	return nil
}

// targetScope reads which devices a target form names: one device_id, or the members of group.
func (c *Console) targetScope(ctx context.Context, r *request) (ids []string, what string, err error) {
	switch r.PostFormValue("scope") {
	case "device", "":
		id := strings.TrimSpace(r.PostFormValue("device_id"))
		if id == "" || len(id) > 128 || !printableASCII(id) {
			return nil, "", lodestone.Errorf(lodestone.EINVALID, "give a device id (1-128 visible ASCII characters)")
		}
		return []string{id}, "device " + id, nil
	case "group":
		gs := c.updGroups()
		if gs == nil {
			return nil, "", lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no device groups")
		}
		gid, perr := strconv.ParseInt(r.PostFormValue("group_id"), 10, 64)
		if perr != nil || gid <= 0 {
			return nil, "", lodestone.Errorf(lodestone.EINVALID, "choose a group")
		}
		g, err := gs.FindGroup(ctx, gid)
		if err != nil {
			return nil, "", err
		}
		f := lodestone.DeviceFilter{GroupID: gid, Limit: lodestone.MaxListLimit, Sort: lodestone.SortID, Ascending: true}
		for ; ; f.Offset += lodestone.MaxListLimit {
			page, err := c.cfg.Devices.FindDevices(ctx, f)
			if err != nil {
				return nil, "", err
			}
			for _, d := range page {
				ids = append(ids, d.DeviceID)
			}
			if len(page) < lodestone.MaxListLimit {
				break
			}
		}
		if len(ids) == 0 {
			return nil, "", lodestone.Errorf(lodestone.EINVALID, "group %s has no devices", g.Name)
		}
		return ids, "group " + g.Name, nil
	}
	return nil, "", lodestone.Errorf(lodestone.EINVALID, "scope must be device or group")
}

// targetSet sets the target of a device, or of every member of a group whose target no campaign set (a group
// target would otherwise quietly take devices out of a running campaign; pause or abort it first).
func (c *Console) targetSet(w http.ResponseWriter, r *request) error {
	const back = "/ui/updates/targets"
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	ctx := r.ctx()
	refuse := func(err error) error {
		switch lodestone.ErrorCode(err) {
		case lodestone.EINVALID, lodestone.ENOTFOUND, lodestone.ECONFLICT, lodestone.EFORBIDDEN:
			c.redirect(w, r.Request, back, flash{Msg: "No target set: " + lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	fid, perr := strconv.ParseInt(r.PostFormValue("firmware_id"), 10, 64)
	if perr != nil || fid <= 0 {
		return refuse(lodestone.Errorf(lodestone.EINVALID, "choose a firmware artifact"))
	}
	fw, err := st.FindFirmwareByID(ctx, fid)
	if err != nil {
		return refuse(err)
	}
	var from *string
	if v := strings.TrimSpace(r.PostFormValue("from_version")); v != "" {
		if len(v) > 128 || !printableASCII(v) {
			return refuse(lodestone.Errorf(lodestone.EINVALID, "from version: at most 128 visible ASCII characters"))
		}
		from = &v
	}
	ids, what, err := c.targetScope(ctx, r)
	if err != nil {
		return refuse(err)
	}
	group := r.PostFormValue("scope") == "group"
	held := map[string]*lodestone.OTATarget{}
	if group {
		if held, err = st.FindTargetsOf(ctx, ids); err != nil {
			return err
		}
	}
	set, skipped := 0, 0
	now := time.Now().UTC()
	for _, id := range ids {
		if t := held[id]; t != nil && t.CampaignID != nil {
			skipped++
			continue
		}
		t := &lodestone.OTATarget{DeviceID: id, TargetVersion: fw.Version, TargetBuildID: fw.BuildID,
			FirmwareID: &fw.ID, FromVersion: from, CreatedAt: now}
		if err := st.SetTarget(ctx, t); err != nil {
			if !group {
				return refuse(err)
			}
			return err
		}
		set++
	}
	msg := fmt.Sprintf("Target %s set for %s", fw.Version, what)
	if group {
		msg = fmt.Sprintf("Target %s set for %d devices of %s", fw.Version, set, what)
	}
	if skipped > 0 {
		msg += fmt.Sprintf("; %d left alone: a campaign set their target (pause or abort it first)", skipped)
	}
	c.redirect(w, r.Request, back, flash{Msg: msg + "."})
	return nil
}

// targetClear clears the target of a device, or of every member of a group whose target no campaign set.
func (c *Console) targetClear(w http.ResponseWriter, r *request) error {
	const back = "/ui/updates/targets"
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	ctx := r.ctx()
	ids, what, err := c.targetScope(ctx, r)
	if err != nil {
		if code := lodestone.ErrorCode(err); code == lodestone.EINVALID || code == lodestone.ENOTFOUND {
			c.redirect(w, r.Request, back, flash{Msg: "Nothing cleared: " + lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	held, err := st.FindTargetsOf(ctx, ids)
	if err != nil {
		return err
	}
	group := r.PostFormValue("scope") == "group"
	cleared, skipped := 0, 0
	for _, id := range ids {
		t := held[id]
		if t == nil {
			continue
		}
		if group && t.CampaignID != nil {
			skipped++
			continue
		}
		if err := st.DeleteTarget(ctx, id); err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return err
		}
		cleared++
	}
	if !group && cleared == 0 {
		c.redirect(w, r.Request, back, flash{Msg: "Nothing cleared: " + what + " has no target.", Err: true})
		return nil
	}
	msg := "Cleared the target of " + what
	if group {
		msg = fmt.Sprintf("Cleared the targets of %d devices of %s", cleared, what)
	}
	if skipped > 0 {
		msg += fmt.Sprintf("; %d left alone: a campaign set their target (abort or roll it back instead)", skipped)
	}
	c.redirect(w, r.Request, back, flash{Msg: msg + "."})
	return nil
}

type fuotaView struct {
	Tabs    []updTab
	Files   []artifactRow
	Devices []fuotaDevice
}

type fuotaDevice struct {
	*lodestone.OTATarget
	File string // the FUOTA path (or file name) of the artifact it names
}

// fuotaPage shows the ESP32 fleet the FUOTA listener manages: its uploads (by update file path, each waiting for
// a provisioner's approval before it is signed) and its device rows (device id, the app_ver it must run, the file).
func (c *Console) fuotaPage(w http.ResponseWriter, r *request) error {
	st, err := c.otaStore()
	if err != nil {
		return err
	}
	v := fuotaView{Tabs: updTabs("/ui/updates/fuota")}
	names := map[int64]string{}
	fws, err := st.FindFirmware(r.ctx())
	if err != nil {
		return err
	}
	for _, f := range fws {
		name := f.Filename
		if f.FUOTAPath != nil {
			name = *f.FUOTAPath
		}
		names[f.ID] = name
		if f.Origin == lodestone.OriginFUOTA {
			v.Files = append(v.Files, c.artifactRow(f))
		}
	}
	ts, err := st.FindTargets(r.ctx())
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Origin == lodestone.OriginFUOTA {
			row := fuotaDevice{OTATarget: t}
			if t.FirmwareID != nil {
				row.File = names[*t.FirmwareID]
			}
			v.Devices = append(v.Devices, row)
		}
	}
	c.updPage(w, r, "fuota", "ESP32 FUOTA", v)
	return nil
}
