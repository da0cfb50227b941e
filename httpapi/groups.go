package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// routesGroups registers ferrite's /groups routes. ferrite lets only admins change groups; here provisioners
// may, as they run the OTA campaigns that target groups.
func (s *Server) routesGroups() {
	s.handle("GET /groups", AccessViewer, s.listGroups)
	s.handle("POST /groups", AccessProvisioner, s.createGroup)
	s.handle("GET /groups/{id}", AccessViewer, s.getGroup)
	s.handle("PUT /groups/{id}", AccessProvisioner, s.updateGroup)
	s.handle("DELETE /groups/{id}", AccessProvisioner, s.deleteGroup)
	s.handle("GET /groups/{id}/devices", AccessViewer, s.listGroupDevices)
	s.handle("POST /groups/{id}/devices/{device_id}", AccessProvisioner, s.addGroupDevice)
	s.handle("DELETE /groups/{id}/devices/{device_id}", AccessProvisioner, s.removeGroupDevice)
}

// groupJSON is ferrite's DeviceGroup.
type groupJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	DeviceCount int     `json:"device_count"`
	CreatedAt   string  `json:"created_at"`
}

func newGroupJSON(g *lodestone.Group) groupJSON {
	return groupJSON{ID: g.ID, Name: g.Name, Description: g.Description, DeviceCount: g.DeviceCount,
		CreatedAt: ts(g.CreatedAt)}
}

func (s *Server) groups() (lodestone.GroupService, error) {
	if s.deps.Groups == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no device groups")
	}
	return s.deps.Groups, nil
}

func groupID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.EINVALID, "group id must be a positive integer")
	}
	return id, nil
}

type groupRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	create      bool
}

func (g *groupRequest) Validate() error {
	if g.Name != nil {
		*g.Name = strings.TrimSpace(*g.Name)
	}
	if g.create && (g.Name == nil || *g.Name == "") || g.Name != nil && *g.Name == "" {
		return lodestone.Errorf(lodestone.EINVALID, "name is required")
	}
	fe := FieldErrors{}
	if g.Name != nil && len(*g.Name) > 128 {
		fe.Add("name", "must be at most 128 bytes")
	}
	if g.Description != nil && len(*g.Description) > 1024 {
		fe.Add("description", "must be at most 1024 bytes")
	}
	return fe.Err()
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	found, err := gs.FindGroups(r.Context())
	if err != nil {
		return err
	}
	out := make([]groupJSON, len(found))
	for i, g := range found {
		out[i] = newGroupJSON(g)
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
	return nil
}

// createGroup answers POST /groups: 201 {"group":…}; a taken name is 409 (ferrite: 500 with SQLite's text).
func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	body := groupRequest{create: true}
	if err := DecodeJSON(w, r, &body, 0); err != nil {
		return err
	}
	g := &lodestone.Group{Name: *body.Name, Description: body.Description, CreatedAt: time.Now().UTC()}
	if err := gs.CreateGroup(r.Context(), g); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"group": newGroupJSON(g)})
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	id, err := groupID(r)
	if err != nil {
		return err
	}
	g, err := gs.FindGroup(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": newGroupJSON(g)})
	return nil
}

func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	id, err := groupID(r)
	if err != nil {
		return err
	}
	var body groupRequest
	if err := DecodeJSON(w, r, &body, 0); err != nil {
		return err
	}
	g, err := gs.UpdateGroup(r.Context(), id, lodestone.GroupUpdate{Name: body.Name, Description: body.Description})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": newGroupJSON(g)})
	return nil
}

// deleteGroup answers DELETE /groups/{id}; a group a running campaign targets is 409 (ferrite: 500).
func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	id, err := groupID(r)
	if err != nil {
		return err
	}
	if err := gs.DeleteGroup(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

// listGroupDevices answers GET /groups/{id}/devices: the members, last seen first; an unknown group has none, as
// in ferrite. The device list's filters and order apply too.
func (s *Server) listGroupDevices(w http.ResponseWriter, r *http.Request) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	f, err := deviceFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.GroupID = id
	return s.writeDevices(w, r, f)
}

func (s *Server) addGroupDevice(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	id, err := groupID(r)
	if err != nil {
		return err
	}
	if err := gs.AddGroupDevice(r.Context(), id, r.PathValue("device_id"), time.Now().UTC()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}

func (s *Server) removeGroupDevice(w http.ResponseWriter, r *http.Request) error {
	gs, err := s.groups()
	if err != nil {
		return err
	}
	id, err := groupID(r)
	if err != nil {
		return err
	}
	if err := gs.RemoveGroupDevice(r.Context(), id, r.PathValue("device_id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
