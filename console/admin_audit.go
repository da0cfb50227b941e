package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

type auditRow struct {
	*lodestone.AuditEntry
	BeforeText, AfterText string
}

type adminAuditView struct {
	Available bool
	Query     url.Values
	Rows      []auditRow
	Newer     bool // the page starts below the newest entry
	Next      string
	First     string
	Head      lodestone.AuditHead
}

const auditPerPage = 50

// adminAudit shows the audit log newest first, filtered by actor, action (a trailing ".*" matches a prefix),
// target kind and time, fifty entries a page with a keyset cursor (before=<id>).
func (c *Console) adminAudit(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	v := adminAuditView{Query: q}
	a := c.cfg.Admin.Audit
	if a == nil {
		c.adminPage(w, r, http.StatusOK, "admin_audit", "audit", "Audit log", v)
		return nil
	}
	f, err := auditFilter(q)
	if err != nil {
		return err
	}
	v.Available = true
	if v.Head, err = a.AuditHead(r.ctx()); err != nil {
		return err
	}
	f.Limit = auditPerPage + 1
	es, err := a.FindAudit(r.ctx(), f)
	if err != nil {
		return err
	}
	link := func(before int64) string {
		n := url.Values{}
		for k, vs := range q {
			if k != "before" && len(vs) > 0 && vs[0] != "" {
				n.Set(k, vs[0])
			}
		}
		if before > 0 {
			n.Set("before", strconv.FormatInt(before, 10))
		}
		return "/ui/admin/audit?" + n.Encode()
	}
	if len(es) > auditPerPage {
		es = es[:auditPerPage]
		v.Next = link(es[len(es)-1].ID)
	}
	if f.BeforeID > 0 {
		v.Newer, v.First = true, link(0)
	}
	for _, e := range es {
		v.Rows = append(v.Rows, auditRow{AuditEntry: e, BeforeText: image(e.Before), AfterText: image(e.After)})
	}
	c.adminPage(w, r, http.StatusOK, "admin_audit", "audit", "Audit log", v)
	return nil
}

// image indents a target's JSON image for reading.
func image(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

// auditFilter reads the page's query; times are the form's UTC datetime-local values or RFC 3339.
func auditFilter(q url.Values) (lodestone.AuditFilter, error) {
	f := lodestone.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		TargetKind: strings.TrimSpace(q.Get("target_kind")), Target: strings.TrimSpace(q.Get("target"))}
	for _, s := range []string{f.Actor, f.Action, f.TargetKind, f.Target} {
		if len(s) > 256 {
			return f, lodestone.Errorf(lodestone.EINVALID, "filters are at most 256 characters")
		}
	}
	var err error
	if f.Since, err = formTime(q.Get("since"), "since"); err != nil {
		return f, err
	}
	if f.Until, err = formTime(q.Get("until"), "until"); err != nil {
		return f, err
	}
	if b := q.Get("before"); b != "" {
		if f.BeforeID, err = strconv.ParseInt(b, 10, 64); err != nil || f.BeforeID <= 0 {
			return f, lodestone.Errorf(lodestone.EINVALID, "before must be an entry id (a positive integer)")
		}
	}
	return f, nil
}

func formTime(s, name string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			if t.Year() < 1970 || t.Year() > 9999 {
				break
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, lodestone.Errorf(lodestone.EINVALID, "%s must be a time like 2026-03-01T09:30 (UTC)", name)
}
