package console

// This file holds the console's pages for groups and their membership.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
)

// groupsPages are this area's templates (templates/NAME.html).
var groupsPages = []string{"groups", "group"}

// Group names and descriptions follow the API's limits (httpapi groupRequest).
const (
	maxGroupName        = 128
	maxGroupDescription = 1024
	membersPerPage      = 50
	groupSearchResults  = 20
	maxAddAtOnce        = 100 // devices added by one submit of the search results
)

func (c *Console) routesGroups() {
	c.mux.HandleFunc("GET /ui/groups", c.user(lodestone.RoleViewer, c.groupsList))
	c.mux.HandleFunc("POST /ui/groups", c.user(lodestone.RoleProvisioner, c.groupCreate))
	c.mux.HandleFunc("GET /ui/groups/{id}", c.user(lodestone.RoleViewer, c.groupPage))
	c.mux.HandleFunc("POST /ui/groups/{id}", c.user(lodestone.RoleProvisioner, c.groupRename))
	c.mux.HandleFunc("POST /ui/groups/{id}/delete", c.user(lodestone.RoleProvisioner, c.groupDelete))
	c.mux.HandleFunc("POST /ui/groups/{id}/members", c.user(lodestone.RoleProvisioner, c.groupAdd))
	c.mux.HandleFunc("POST /ui/groups/{id}/members/remove", c.user(lodestone.RoleProvisioner, c.groupRemove))
}

func (c *Console) groupService() (lodestone.GroupService, error) {
	if c.cfg.Groups == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no device groups")
	}
	return c.cfg.Groups, nil
}

// groupForm reads and checks a group's name and description from a form.
func groupForm(r *request) (name string, desc *string, err error) {
	name = strings.TrimSpace(r.PostFormValue("name"))
	d := strings.TrimSpace(r.PostFormValue("description"))
	switch {
	case name == "":
		return "", nil, lodestone.Errorf(lodestone.EINVALID, "a group needs a name")
	case len(name) > maxGroupName || !utf8.ValidString(name):
		return "", nil, lodestone.Errorf(lodestone.EINVALID, "a group name is at most %d bytes of UTF-8 text", maxGroupName)
	case len(d) > maxGroupDescription || !utf8.ValidString(d):
		return "", nil, lodestone.Errorf(lodestone.EINVALID, "a description is at most %d bytes of UTF-8 text",
			maxGroupDescription)
	}
	return name, &d, nil
}

type groupsView struct {
	Groups []*lodestone.Group
	Name   string // the create form's values after a refusal
}

func (c *Console) groupsList(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	groups, err := gs.FindGroups(r.ctx())
	if err != nil {
		return err
	}
	c.page(w, r, "groups", "Groups", groupsView{Groups: groups})
	return nil
}

// groupRefused answers a write that the service turned down for a reason the user can act on (bad input, a taken
// name, a campaign in the way, something gone) with a flash on the page; anything else is the server's fault.
func (c *Console) groupRefused(w http.ResponseWriter, r *request, to, prefix string, err error) bool {
	switch lodestone.ErrorCode(err) {
	case lodestone.EINVALID, lodestone.ECONFLICT, lodestone.ENOTFOUND:
		c.redirect(w, r.Request, to, flash{Msg: prefix + lodestone.ErrorMessage(err), Err: true})
		return true
	}
	return false
}

func (c *Console) groupCreate(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	name, desc, err := groupForm(r)
	if err == nil {
		if *desc == "" {
			desc = nil
		}
		g := &lodestone.Group{Name: name, Description: desc, CreatedAt: time.Now().UTC()}
		if err = gs.CreateGroup(r.ctx(), g); err == nil {
			c.redirect(w, r.Request, groupURL(g.ID), flash{Msg: "Created group " + g.Name + "."})
			return nil
		}
	}
	if c.groupRefused(w, r, "/ui/groups", "Not created: ", err) {
		return nil
	}
	return err
}

func groupURL(id int64) string { return "/ui/groups/" + strconv.FormatInt(id, 10) }

func groupIDParam(r *request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.ENOTFOUND, "no group %q", r.PathValue("id"))
	}
	return id, nil
}

// foundDevice is a search result on the group page: a device and whether it is a member already.
type foundDevice struct {
	*lodestone.Device
	Member bool
}

type groupView struct {
	Group    *lodestone.Group
	Members  []*lodestone.Device
	Page     int
	Prev     string
	Next     string
	Search   string
	Found    []foundDevice
	More     bool // the search matched more than it shows
	Addable  bool // some of the found devices are not members yet
	Searched bool
}

func (c *Console) groupPage(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	id, err := groupIDParam(r)
	if err != nil {
		return err
	}
	ctx := r.ctx()
	g, err := gs.FindGroup(ctx, id)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
		}
		page = n
	}
	v := groupView{Group: g, Page: page, Search: strings.TrimSpace(q.Get("q"))}
	if len(v.Search) > 128 {
		return lodestone.Errorf(lodestone.EINVALID, "search terms are at most 128 characters")
	}
	members, err := c.cfg.Devices.FindDevices(ctx, lodestone.DeviceFilter{GroupID: id, Sort: lodestone.DeviceSort("device_id"),
		Ascending: true, Limit: membersPerPage + 1, Offset: (page - 1) * membersPerPage})
	if err != nil {
		return err
	}
	link := func(p int) string {
		n := url.Values{"page": {strconv.Itoa(p)}}
		if v.Search != "" {
			n.Set("q", v.Search)
		}
		return groupURL(id) + "?" + n.Encode()
	}
	if len(members) > membersPerPage {
		members = members[:membersPerPage]
		v.Next = link(page + 1)
	}
	if page > 1 {
		v.Prev = link(page - 1)
	}
	v.Members = members
	if v.Search != "" && r.user.Allows(lodestone.RoleProvisioner) {
		v.Searched = true
		found, err := c.cfg.Devices.FindDevices(ctx, lodestone.DeviceFilter{Search: v.Search,
			Limit: groupSearchResults + 1})
		if err != nil {
			return err
		}
		if len(found) > groupSearchResults {
			found, v.More = found[:groupSearchResults], true
		}
		// Which of them are members already: the members that match the same search, one query.
		in, err := c.cfg.Devices.FindDevices(ctx, lodestone.DeviceFilter{Search: v.Search, GroupID: id,
			Limit: lodestone.MaxListLimit})
		if err != nil {
			return err
		}
		member := map[string]bool{}
		for _, d := range in {
			member[d.DeviceID] = true
		}
		for _, d := range found {
			v.Found = append(v.Found, foundDevice{Device: d, Member: member[d.DeviceID]})
			v.Addable = v.Addable || !member[d.DeviceID]
		}
	}
	c.page(w, r, "group", g.Name, v)
	return nil
}

func (c *Console) groupRename(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	id, err := groupIDParam(r)
	if err != nil {
		return err
	}
	name, desc, err := groupForm(r)
	if err == nil {
		var g *lodestone.Group
		if g, err = gs.UpdateGroup(r.ctx(), id, lodestone.GroupUpdate{Name: &name, Description: desc}); err == nil {
			c.redirect(w, r.Request, groupURL(id), flash{Msg: "Saved group " + g.Name + "."})
			return nil
		}
	}
	if c.groupRefused(w, r, groupURL(id), "Not saved: ", err) {
		return nil
	}
	return err
}

func (c *Console) groupDelete(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	id, err := groupIDParam(r)
	if err != nil {
		return err
	}
	// The confirmation step: the form's checkbox, so one stray click deletes nothing.
	if r.PostFormValue("confirm") != "yes" {
		c.redirect(w, r.Request, groupURL(id), flash{Msg: "Not deleted: tick the box to confirm first.", Err: true})
		return nil
	}
	g, err := gs.FindGroup(r.ctx(), id)
	if err == nil {
		err = gs.DeleteGroup(r.ctx(), id)
	}
	if err != nil {
		if c.groupRefused(w, r, groupURL(id), "Not deleted: ", err) {
			return nil
		}
		return err
	}
	c.redirect(w, r.Request, "/ui/groups", flash{Msg: fmt.Sprintf("Deleted group %s and its %d membership(s).",
		g.Name, g.DeviceCount)})
	return nil
}

// groupAdd adds the devices ticked in the search results (device_id, repeated); each is added or refused on
// its own, and the flash lists the refused.
func (c *Console) groupAdd(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	id, err := groupIDParam(r)
	if err != nil {
		return err
	}
	back := groupURL(id)
	if q := strings.TrimSpace(r.PostFormValue("q")); q != "" && len(q) <= 128 {
		back += "?" + url.Values{"q": {q}}.Encode()
	}
	ids := r.PostForm["device_id"]
	if len(ids) == 0 {
		c.redirect(w, r.Request, back, flash{Msg: "Tick the devices to add first.", Err: true})
		return nil
	}
	if len(ids) > maxAddAtOnce {
		c.redirect(w, r.Request, back, flash{Msg: fmt.Sprintf("Add at most %d devices at once.", maxAddAtOnce),
			Err: true})
		return nil
	}
	out := flash{}
	added := 0
	now := time.Now().UTC()
	for i, dev := range ids {
		if err := gs.AddGroupDevice(r.ctx(), id, dev, now); err != nil {
			switch lodestone.ErrorCode(err) {
			case lodestone.ENOTFOUND, lodestone.ECONFLICT, lodestone.EINVALID:
				out.Rows = append(out.Rows, flashRow{Row: i + 1, DeviceID: truncate(dev, 40), Error: lodestone.ErrorMessage(err)})
				continue
			}
			return err
		}
		added++
	}
	out.Msg = fmt.Sprintf("Added %d of %d device(s) to the group.", added, len(ids))
	out.Err = added < len(ids)
	c.redirect(w, r.Request, back, out)
	return nil
}

func (c *Console) groupRemove(w http.ResponseWriter, r *request) error {
	gs, err := c.groupService()
	if err != nil {
		return err
	}
	id, err := groupIDParam(r)
	if err != nil {
		return err
	}
	dev := r.PostFormValue("device_id")
	if err := gs.RemoveGroupDevice(r.ctx(), id, dev); err != nil {
		if c.groupRefused(w, r, groupURL(id), "Not removed: ", err) {
			return nil
		}
		return err
	}
	c.redirect(w, r.Request, groupURL(id), flash{Msg: "Removed " + truncate(dev, 128) + " from the group."})
	return nil
}
