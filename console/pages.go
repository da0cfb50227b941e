package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func (c *Console) page(w http.ResponseWriter, r *request, name, title string, data any, opts ...func(*pageData)) {
	pd := &pageData{Title: title, Nav: name, User: r.user, CSRF: r.csrf, Data: data}
	for _, o := range opts {
		o(pd)
	}
	c.render(w, r.Request, http.StatusOK, name, pd)
}

// live and chart are page options: the page loads the live-update or the chart script.
func live(pd *pageData)  { pd.Live = true }
func chart(pd *pageData) { pd.Chart = true }

type overviewView struct {
	Counts        lodestone.FleetCounts
	Offline       int64
	Faults24      int
	Faults24More  bool
	Crashes24     int
	Firmware      []lodestone.DeviceCount
	TopCrashes    []*lodestone.CrashGroup
	RecentDevices []*lodestone.Device
	RecentFaults  []*lodestone.Fault
	IngestURL     string
}

// recentWindow is what the overview calls new.
const recentWindow = 24 * time.Hour

// deviceTotals is the overview's first three cards: devices, online, offline.
type deviceTotals struct {
	Devices int64 `json:"devices"`
	Online  int64 `json:"online"`
	Offline int64 `json:"offline"`
}

func (c *Console) deviceTotals(ctx context.Context) (deviceTotals, error) {
	var t deviceTotals
	if c.cfg.Counts == nil {
		return t, nil
	}
	byStatus, err := c.breakdown(ctx, lodestone.CountByStatus, 10)
	if err != nil {
		return t, err
	}
	for _, s := range byStatus {
		t.Devices += s.Devices
		t.Online += s.Online
		if s.Value == string(lodestone.StatusOffline) {
			t.Offline = s.Devices
		}
	}
	return t, nil
}

// totals answers the overview's cards as JSON: the page's script asks again when the live stream says a device
// connected or went offline, so the cards follow the fleet without polling.
func (c *Console) totals(w http.ResponseWriter, r *request) error {
	t, err := c.deviceTotals(r.ctx())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	writeJSONBody(w, t)
	return nil
}

func (c *Console) overview(w http.ResponseWriter, r *request) error {
	ctx := r.ctx()
	v := overviewView{IngestURL: c.ingestURL(r.Request)}
	if c.cfg.Counts != nil {
		t, err := c.deviceTotals(ctx)
		if err != nil {
			return err
		}
		v.Counts.Devices, v.Counts.DevicesOnline, v.Offline = t.Devices, t.Online, t.Offline
		if v.Firmware, err = c.breakdown(ctx, lodestone.CountByFirmware, 8); err != nil {
			return err
		}
	}
	since := c.now().Add(-recentWindow)
	faults, err := c.cfg.Telemetry.FindFaults(ctx, lodestone.TelemetryFilter{Since: since, Limit: lodestone.MaxListLimit})
	if err != nil {
		return err
	}
	v.Faults24, v.Faults24More = len(faults), len(faults) == lodestone.MaxListLimit
	v.RecentFaults = faults[:min(len(faults), 5)]
	if c.cfg.Crashes != nil {
		groups, _, err := c.cfg.Crashes.FindCrashGroups(ctx, lodestone.CrashFilter{Limit: lodestone.MaxListLimit})
		if err != nil {
			return err
		}
		for _, g := range groups {
			if !g.FirstSeen.Before(since) {
				v.Crashes24++
			}
		}
		v.TopCrashes = groups[:min(len(groups), 5)]
	}
	if v.RecentDevices, err = c.cfg.Devices.FindDevices(ctx, lodestone.DeviceFilter{Limit: 8}); err != nil {
		return err
	}
	c.page(w, r, "overview", "Overview", v, live)
	return nil
}

// ingestURL is the ingest address for the empty states' curl example.
func (c *Console) ingestURL(r *http.Request) string {
	if c.cfg.IngestURL != "" {
		return c.cfg.IngestURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

type devicesView struct {
	Devices  []*lodestone.Device
	Filter   lodestone.DeviceFilter
	Query    url.Values
	Groups   []*lodestone.Group
	Firmware []lodestone.DeviceCount
	Sorts    []lodestone.DeviceSort
	Page     int
	Prev     string
	Next     string
	Empty    bool // the fleet has no device at all
	Ingest   string
}

const devicesPerPage = 50

// deviceFilter reads the device list's query; unknown values are refused with a message, not ignored.
func deviceFilter(q url.Values) (lodestone.DeviceFilter, int, error) {
	f := lodestone.DeviceFilter{Search: strings.TrimSpace(q.Get("q")), Tag: strings.TrimSpace(q.Get("tag")),
		FirmwareVersion: q.Get("firmware"), Status: lodestone.DeviceStatus(q.Get("status")),
		Sort: lodestone.DeviceSort(q.Get("sort")), Ascending: q.Get("order") == "asc", Limit: devicesPerPage + 1}
	switch f.Status {
	case "", lodestone.StatusOnline, lodestone.StatusOffline, lodestone.StatusProvisioned, lodestone.StatusUnknown:
	default:
		return f, 0, lodestone.Errorf(lodestone.EINVALID, "unknown status %q", f.Status)
	}
	if f.Sort != "" && !slices.Contains(lodestone.DeviceSorts, f.Sort) {
		return f, 0, lodestone.Errorf(lodestone.EINVALID, "unknown sort %q", f.Sort)
	}
	if g := q.Get("group"); g != "" {
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil || id <= 0 {
			return f, 0, lodestone.Errorf(lodestone.EINVALID, "group must be a group id")
		}
		f.GroupID = id
	}
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return f, 0, lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
		}
		page = n
	}
	f.Offset = (page - 1) * devicesPerPage
	if len(f.Search) > 128 || len(f.Tag) > 128 || len(f.FirmwareVersion) > 128 {
		return f, 0, lodestone.Errorf(lodestone.EINVALID, "search terms are at most 128 characters")
	}
	return f, page, nil
}

func (c *Console) devices(w http.ResponseWriter, r *request) error {
	ctx := r.ctx()
	q := r.URL.Query()
	f, page, err := deviceFilter(q)
	if err != nil {
		return err
	}
	devs, err := c.cfg.Devices.FindDevices(ctx, f)
	if err != nil {
		return err
	}
	v := devicesView{Filter: f, Query: q, Page: page, Sorts: lodestone.DeviceSorts, Ingest: c.ingestURL(r.Request)}
	if len(devs) > devicesPerPage {
		devs = devs[:devicesPerPage]
		v.Next = pageURL(q, page+1)
	}
	if page > 1 {
		v.Prev = pageURL(q, page-1)
	}
	v.Devices = devs
	v.Empty = len(devs) == 0 && page == 1 && f.Search == "" && f.Tag == "" && f.Status == "" && f.GroupID == 0 &&
		f.FirmwareVersion == ""
	if c.cfg.Groups != nil {
		if v.Groups, err = c.cfg.Groups.FindGroups(ctx); err != nil {
			return err
		}
	}
	if c.cfg.Counts != nil {
		if v.Firmware, err = c.breakdown(ctx, lodestone.CountByFirmware, 50); err != nil {
			return err
		}
	}
	c.page(w, r, "devices", "Devices", v)
	return nil
}

func pageURL(q url.Values, page int) string {
	n := url.Values{}
	for k, v := range q {
		n[k] = v
	}
	n.Set("page", strconv.Itoa(page))
	return "/ui/devices?" + n.Encode()
}

type deviceView struct {
	Device     *lodestone.Device
	Groups     []*lodestone.Group
	Keys       []*lodestone.Token
	Faults     []*lodestone.Fault
	Reboots    []*lodestone.Reboot
	Heartbeats []*lodestone.Heartbeat
	Traces     []*lodestone.Trace
	OTA        []*lodestone.OtaRequest
	MetricKeys []string
	Ingest     string
	Target     *lodestone.OTATarget // the firmware it should run, if one is set
	UpToDate   bool                 // it runs the target's version
	DDI        *ddiView             // its hawkBit DDI state, if it polls as a controller (device_edit.go)
	Timeline   *timelineView        // what happened to it, newest first (stability.go)
}

func (c *Console) device(w http.ResponseWriter, r *request) error {
	ctx := r.ctx()
	d, err := c.cfg.Devices.FindDeviceByID(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := deviceView{Device: d, Ingest: c.ingestURL(r.Request)}
	tf := lodestone.TelemetryFilter{DeviceID: d.DeviceID, Limit: 20}
	if v.Faults, err = c.cfg.Telemetry.FindFaults(ctx, tf); err != nil {
		return err
	}
	if v.Reboots, err = c.cfg.Telemetry.FindReboots(ctx, tf); err != nil {
		return err
	}
	if v.Heartbeats, err = c.cfg.Telemetry.FindHeartbeats(ctx, tf); err != nil {
		return err
	}
	if v.Traces, err = c.cfg.Telemetry.FindTraces(ctx, lodestone.TelemetryFilter{DeviceID: d.DeviceID, Limit: 10}); err != nil {
		return err
	}
	if v.OTA, err = c.cfg.Telemetry.FindOtaRequests(ctx, lodestone.TelemetryFilter{DeviceID: d.DeviceID, Limit: 10}); err != nil {
		return err
	}
	// The keys of its recent samples: a chart per key.
	ms, err := c.cfg.Telemetry.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{
		DeviceID: d.DeviceID, Limit: 500}})
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !slices.Contains(v.MetricKeys, m.Key) {
			v.MetricKeys = append(v.MetricKeys, m.Key)
		}
	}
	slices.Sort(v.MetricKeys)
	if c.cfg.Credentials != nil && r.user.Allows(lodestone.RoleProvisioner) {
		if v.Keys, err = c.cfg.Credentials.FindTokens(ctx, lodestone.TokenFilter{Kind: lodestone.TokenDevice,
			DeviceID: d.DeviceID}); err != nil {
			return err
		}
	}
	if c.cfg.Targets != nil {
		t, err := c.cfg.Targets.FindTarget(ctx, d.DeviceID)
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return err
		}
		if t != nil {
			v.Target, v.UpToDate = t, !t.Offers(d.FirmwareVersion, d.BuildID)
		}
	}
	if c.cfg.Membership != nil {
		if v.Groups, err = c.cfg.Membership.FindDeviceGroups(ctx, d.DeviceID); err != nil {
			return err
		}
	}
	if v.DDI, err = c.deviceDDI(ctx, d.DeviceID); err != nil {
		return err
	}
	if v.Timeline, err = c.deviceTimeline(ctx, d.DeviceID, r.URL.Query().Get("timeline")); err != nil {
		return err
	}
	c.page(w, r, "device", d.DeviceID, v, live, chart)
	return nil
}

type faultsView struct {
	Faults []*lodestone.Fault
	Device string
	Page   int
	Prev   string
	Next   string
	Ingest string
}

const faultsPerPage = 50

func (c *Console) faults(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
		}
		page = n
	}
	dev := q.Get("device")
	fs, err := c.cfg.Telemetry.FindFaults(r.ctx(), lodestone.TelemetryFilter{DeviceID: dev, Limit: faultsPerPage + 1,
		Offset: (page - 1) * faultsPerPage})
	if err != nil {
		return err
	}
	v := faultsView{Device: dev, Page: page, Ingest: c.ingestURL(r.Request)}
	link := func(p int) string {
		n := url.Values{"page": {strconv.Itoa(p)}}
		if dev != "" {
			n.Set("device", dev)
		}
		return "/ui/faults?" + n.Encode()
	}
	if len(fs) > faultsPerPage {
		fs = fs[:faultsPerPage]
		v.Next = link(page + 1)
	}
	if page > 1 {
		v.Prev = link(page - 1)
	}
	v.Faults = fs
	c.page(w, r, "faults", "Faults", v, live)
	return nil
}

type fleetView struct {
	Tags   []lodestone.DeviceCount
	Groups []lodestone.DeviceCount
	Status []lodestone.DeviceCount
	Total  int64
}

func (c *Console) fleet(w http.ResponseWriter, r *request) error {
	if c.cfg.Counts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server cannot count devices")
	}
	var v fleetView
	var err error
	if v.Tags, err = c.breakdown(r.ctx(), lodestone.CountByTag, 200); err != nil {
		return err
	}
	if v.Groups, err = c.breakdown(r.ctx(), lodestone.CountByGroup, 200); err != nil {
		return err
	}
	if v.Status, err = c.breakdown(r.ctx(), lodestone.CountByStatus, 10); err != nil {
		return err
	}
	for _, s := range v.Status {
		v.Total += s.Devices
	}
	c.page(w, r, "fleet", "Fleet", v)
	return nil
}
