package console

import (
	"context"
	"net/http"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// This file holds the device page's additions: editing a device's name and tags (PUT /devices/{id} in the API),
// and the hawkBit DDI state of a device that polls as a DDI controller (GET /devices/{id}/attributes and
// /devices/{id}/ddi-actions).

// ddiView is a DDI controller's state; nil on the page when the device has none.
type ddiView struct {
	Attributes map[string]string
	Actions    []*lodestone.DDIAction
}

// ddiActionsShown bounds the deployments listed on the device page, newest first.
const ddiActionsShown = 20

// routesMore registers the pages that close part 2's gaps: device edits, ELF deletion, the device report.
func (c *Console) routesMore() {
	c.mux.HandleFunc("POST /ui/devices/{id}/edit", c.user(lodestone.RoleProvisioner, c.deviceEdit))
	c.mux.HandleFunc("POST /ui/updates/elf/{id}/delete", c.user(lodestone.RoleProvisioner, c.elfDelete))
	c.mux.HandleFunc("GET /ui/report/devices", c.user(lodestone.RoleViewer, c.deviceReport))
	c.mux.HandleFunc("GET /ui/stability", c.user(lodestone.RoleViewer, c.stability))
}

// ddiStore is the DDI side of the OTA service when the server speaks DDI.
func (c *Console) ddiStore() lodestone.DDIStore {
	if s := c.cfg.Updates.OTA; s != nil {
		if d := s.DDI(); d != nil {
			return d.Store()
		}
	}
	return nil
}

// deviceDDI reads a device's DDI state; nil when DDI is off or the device never acted as a controller.
func (c *Console) deviceDDI(ctx context.Context, deviceID string) (*ddiView, error) {
	st := c.ddiStore()
	if st == nil {
		return nil, nil
	}
	attrs, err := st.DeviceAttributes(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	acts, err := st.FindDDIActions(ctx, deviceID, ddiActionsShown)
	if err != nil {
		return nil, err
	}
	if len(attrs) == 0 && len(acts) == 0 {
		return nil, nil
	}
	return &ddiView{Attributes: attrs, Actions: acts}, nil
}

// deviceEdit sets a device's name and tags with the API's limits; the store records the change in the audit log.
func (c *Console) deviceEdit(w http.ResponseWriter, r *request) error {
	if c.cfg.Registry == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server cannot edit devices")
	}
	id := r.PathValue("id")
	back := "/ui/devices/" + pathEscape(id)
	name, tags := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("tags"))
	var err error
	switch {
	case len(name) > 128:
		err = lodestone.Errorf(lodestone.EINVALID, "a name is at most 128 bytes")
	case len(tags) > 1024:
		err = lodestone.Errorf(lodestone.EINVALID, "tags are at most 1024 bytes")
	}
	if err == nil {
		_, err = c.cfg.Registry.UpdateDevice(r.ctx(), id, lodestone.DeviceUpdate{Name: &name, Tags: &tags})
	}
	return c.done(w, r, back, "Saved the name and tags of "+id+".", err)
}
