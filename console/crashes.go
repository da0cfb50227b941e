package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
)

type crashesView struct {
	Groups []*lodestone.CrashGroup
	Total  int
	State  string
	Page   int
	Prev   string
	Next   string
}

const crashesPerPage = 50

func (c *Console) crashes(w http.ResponseWriter, r *request) error {
	if c.cfg.Crashes == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not group crashes")
	}
	q := r.URL.Query()
	state := lodestone.CrashState(q.Get("state"))
	if state != "" && !slices.Contains([]lodestone.CrashState{lodestone.CrashOpen, lodestone.CrashResolved,
		lodestone.CrashMuted, lodestone.CrashMerged}, state) {
		return lodestone.Errorf(lodestone.EINVALID, "unknown state %q", state)
	}
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
		}
		page = n
	}
	groups, total, err := c.cfg.Crashes.FindCrashGroups(r.ctx(), lodestone.CrashFilter{State: state,
		Limit: crashesPerPage, Offset: (page - 1) * crashesPerPage})
	if err != nil {
		return err
	}
	v := crashesView{Groups: groups, Total: total, State: string(state), Page: page}
	link := func(p int) string {
		n := url.Values{"page": {strconv.Itoa(p)}}
		if state != "" {
			n.Set("state", string(state))
		}
		return "/ui/crashes?" + n.Encode()
	}
	if page*crashesPerPage < total {
		v.Next = link(page + 1)
	}
	if page > 1 {
		v.Prev = link(page - 1)
	}
	c.page(w, r, "crashes", "Crashes", v)
	return nil
}

type crashView struct {
	Group       *lodestone.CrashGroup
	Latest      *lodestone.Fault
	Occurrences []*lodestone.Fault
	Devices     []string
	Registers   [][2]string
}

func crashID(r *request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.ENOTFOUND, "no crash issue %q", r.PathValue("id"))
	}
	return id, nil
}

func (c *Console) crash(w http.ResponseWriter, r *request) error {
	if c.cfg.Crashes == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not group crashes")
	}
	id, err := crashID(r)
	if err != nil {
		return err
	}
	g, err := c.cfg.Crashes.FindCrashGroupByID(r.ctx(), id)
	if err != nil {
		return err
	}
	occ, err := c.cfg.Crashes.FindCrashOccurrences(r.ctx(), id, lodestone.TelemetryFilter{Limit: 100})
	if err != nil {
		return err
	}
	v := crashView{Group: g, Occurrences: occ}
	for _, f := range occ {
		if !slices.Contains(v.Devices, f.DeviceID) {
			v.Devices = append(v.Devices, f.DeviceID)
		}
	}
	if len(occ) > 0 {
		v.Latest = occ[0]
		rg := occ[0].Registers
		for _, x := range []struct {
			n string
			v uint32
		}{{"R0", rg.R0}, {"R1", rg.R1}, {"R2", rg.R2}, {"R3", rg.R3}, {"R4", rg.R4}, {"R5", rg.R5}, {"R6", rg.R6},
			{"R7", rg.R7}, {"R8", rg.R8}, {"R9", rg.R9}, {"R10", rg.R10}, {"R11", rg.R11}, {"R12", rg.R12},
			{"SP", rg.SP}, {"LR", rg.LR}, {"PC", rg.PC}, {"xPSR", rg.XPSR}, {"CFSR", occ[0].CFSR},
			{"HFSR", occ[0].HFSR}, {"MMFAR", occ[0].MMFAR}, {"BFAR", occ[0].BFAR}} {
			v.Registers = append(v.Registers, [2]string{x.n, hex32(x.v)})
		}
	}
	c.page(w, r, "crash", crashTitle(g), v)
	return nil
}

func hex32(v uint32) string { return "0x" + strconv.FormatUint(uint64(v)|1<<32, 16)[1:] }

func crashTitle(g *lodestone.CrashGroup) string {
	if g.Title != nil && *g.Title != "" {
		return *g.Title
	}
	return "Crash issue " + strconv.FormatInt(g.ID, 10)
}

func (c *Console) crashState(w http.ResponseWriter, r *request) error {
	id, err := crashID(r)
	if err != nil {
		return err
	}
	state := lodestone.CrashState(r.PostFormValue("state"))
	if state != lodestone.CrashOpen && state != lodestone.CrashResolved && state != lodestone.CrashMuted {
		return lodestone.Errorf(lodestone.EINVALID, "state must be open, resolved or muted")
	}
	to := "/ui/crashes/" + strconv.FormatInt(id, 10)
	if _, err := c.cfg.Crashes.SetCrashGroupState(r.ctx(), id, state); err != nil {
		if lodestone.ErrorCode(err) == lodestone.EINVALID || lodestone.ErrorCode(err) == lodestone.ECONFLICT {
			c.redirect(w, r.Request, to, flash{Msg: lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	msg := map[lodestone.CrashState]string{lodestone.CrashOpen: "Issue reopened.",
		lodestone.CrashResolved: "Issue resolved: a crash on newer firmware will reopen it.",
		lodestone.CrashMuted:    "Issue muted."}[state]
	c.redirect(w, r.Request, to, flash{Msg: msg})
	return nil
}

func (c *Console) crashMerge(w http.ResponseWriter, r *request) error {
	id, err := crashID(r)
	if err != nil {
		return err
	}
	to := "/ui/crashes/" + strconv.FormatInt(id, 10)
	into, err := strconv.ParseInt(r.PostFormValue("into"), 10, 64)
	if err != nil || into <= 0 {
		c.redirect(w, r.Request, to, flash{Msg: "Merge into: give the number of another crash issue.", Err: true})
		return nil
	}
	g, err := c.cfg.Crashes.MergeCrashGroups(r.ctx(), id, into)
	if err != nil {
		switch lodestone.ErrorCode(err) {
		case lodestone.EINVALID, lodestone.ECONFLICT, lodestone.ENOTFOUND:
			c.redirect(w, r.Request, to, flash{Msg: "Not merged: " + lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	c.redirect(w, r.Request, "/ui/crashes/"+strconv.FormatInt(g.ID, 10),
		flash{Msg: "Merged issue " + strconv.FormatInt(id, 10) + " into this one."})
	return nil
}

func pathEscape(s string) string { return url.PathEscape(s) }
