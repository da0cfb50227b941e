package console

// This file holds the console's pages for firmware artifacts, targets, campaigns and the FUOTA fleet: the routes,
// their dependencies and what the pages share. The handlers are in updates_*.go.

import (
	"net/http"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/ota"
)

// UpdatesDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
type UpdatesDeps struct {
	OTA       *ota.Service   // artifacts, targets, manifests (the API's /ota routes use the same)
	Campaigns *ota.Campaigns // campaign creation and actions
	Blobs     lodestone.BlobStore
	ELFs      lodestone.ELFService   // symbol files
	Symbols   httpapi.Symbolicator   // checks an uploaded ELF and wakes symbolication
	MaxBytes  int64                  // largest firmware upload; default httpapi.DefaultMaxFirmware
	Groups    lodestone.GroupService // group targets and campaign groups; default Config.Groups
}

// updatesPages are this area's templates (templates/NAME.html).
var updatesPages = []string{"updates", "firmware", "artifact", "targets", "campaign_new", "campaign",
	"campaign_confirm", "fuota"}

func init() {
	// The campaign pages follow these on the console's event stream.
	liveTypes = append(liveTypes, ota.EventCampaign, ota.EventProgress, ota.EventCampaignHalted)
	funcs["humanBytes"] = humanBytes
	funcs["hours"] = func(h float64) string { return strconv.FormatFloat(h, 'f', 2, 64) }
	funcs["short"] = func(s string) string { return truncate(s, 12) }
	funcs["duration"] = shortDuration
}

func (c *Console) routesUpdates() {
	m := c.mux
	m.HandleFunc("GET /ui/updates", c.user(lodestone.RoleViewer, c.updatesHome))
	m.HandleFunc("GET /ui/updates/firmware", c.user(lodestone.RoleViewer, c.firmwareList))
	m.HandleFunc("POST /ui/updates/firmware", c.streamed(lodestone.RoleProvisioner, c.firmwareUpload))
	m.HandleFunc("GET /ui/updates/firmware/{id}", c.user(lodestone.RoleViewer, c.artifact))
	m.HandleFunc("GET /ui/updates/firmware/{id}/download", c.user(lodestone.RoleViewer, c.artifactDownload))
	m.HandleFunc("POST /ui/updates/firmware/{id}/delete", c.user(lodestone.RoleProvisioner, c.artifactDelete))
	m.HandleFunc("POST /ui/updates/firmware/{id}/approve", c.user(lodestone.RoleProvisioner, c.artifactApprove))
	m.HandleFunc("POST /ui/updates/elf", c.streamed(lodestone.RoleProvisioner, c.elfUpload))
	m.HandleFunc("GET /ui/updates/targets", c.user(lodestone.RoleViewer, c.targetsPage))
	m.HandleFunc("POST /ui/updates/targets", c.user(lodestone.RoleProvisioner, c.targetSet))
	m.HandleFunc("POST /ui/updates/targets/clear", c.user(lodestone.RoleProvisioner, c.targetClear))
	m.HandleFunc("GET /ui/updates/campaigns/new", c.user(lodestone.RoleProvisioner, c.campaignNew))
	m.HandleFunc("POST /ui/updates/campaigns", c.user(lodestone.RoleProvisioner, c.campaignCreate))
	m.HandleFunc("GET /ui/updates/campaigns/{id}", c.user(lodestone.RoleViewer, c.campaignPage))
	m.HandleFunc("GET /ui/updates/campaigns/{id}/series", c.user(lodestone.RoleViewer, c.campaignSeries))
	m.HandleFunc("GET /ui/updates/campaigns/{id}/{action}", c.user(lodestone.RoleProvisioner, c.campaignConfirm))
	m.HandleFunc("POST /ui/updates/campaigns/{id}/{action}", c.user(lodestone.RoleProvisioner, c.campaignAct))
	m.HandleFunc("GET /ui/updates/fuota", c.user(lodestone.RoleViewer, c.fuotaPage))
}

// updPage renders one of this area's pages with the Updates navigation entry marked.
func (c *Console) updPage(w http.ResponseWriter, r *request, name, title string, data any, opts ...func(*pageData)) {
	opts = append(opts, func(pd *pageData) { pd.Nav = "updates" })
	c.page(w, r, name, title, data, opts...)
}

// otaStore is the storage behind the OTA service, or an EUNAVAILABLE error.
func (c *Console) otaStore() (lodestone.OTAStore, error) {
	if c.cfg.Updates.OTA == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "firmware updates are not enabled on this server")
	}
	return c.cfg.Updates.OTA.Store(), nil
}

func (c *Console) updGroups() lodestone.GroupService {
	if c.cfg.Updates.Groups != nil {
		return c.cfg.Updates.Groups
	}
	return c.cfg.Groups
}

// pathInt64 reads a positive id from the path; anything else is no such page.
func pathInt64(r *request, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.ENOTFOUND, "no %s %q", what, r.PathValue("id"))
	}
	return id, nil
}

// updTab is the updates area's own tab bar.
type updTab struct {
	Href, Label string
	Current     bool
}

func updTabs(current string) []updTab {
	tabs := []updTab{{"/ui/updates", "Campaigns", false}, {"/ui/updates/firmware", "Firmware", false},
		{"/ui/updates/targets", "Targets", false}, {"/ui/updates/fuota", "ESP32 FUOTA", false}}
	for i := range tabs {
		tabs[i].Current = tabs[i].Href == current
	}
	return tabs
}
