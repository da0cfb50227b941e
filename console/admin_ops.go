package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
)

type deliveryRow struct {
	*lodestone.AlertDelivery
	Webhook string // scheme and host only
}

type adminAlertsView struct {
	Webhooks  []string
	Settings  AlertSettings
	Available bool
	Rows      []deliveryRow
	Status    string
	Statuses  []string
	Page      int
	Prev      string
	Next      string
}

const deliveriesPerPage = 50

// adminAlerts shows the configured webhooks and the delivery log, filtered by status, newest first.
func (c *Console) adminAlerts(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	v := adminAlertsView{Settings: c.cfg.Admin.Webhooks, Status: q.Get("status"),
		Statuses: []string{lodestone.DeliveryPending, lodestone.DeliveryDelivered, lodestone.DeliveryFailed}}
	for _, u := range c.cfg.Admin.Webhooks.URLs {
		v.Webhooks = append(v.Webhooks, alert.RedactURL(u))
	}
	switch v.Status {
	case "", lodestone.DeliveryPending, lodestone.DeliveryDelivered, lodestone.DeliveryFailed:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be pending, delivered or failed, got %q", v.Status)
	}
	page, err := pageParam(q)
	if err != nil {
		return err
	}
	v.Page = page
	if a := c.cfg.Admin.Alerts; a != nil {
		v.Available = true
		ds, err := a.FindAlertDeliveries(r.ctx(), lodestone.AlertFilter{Status: v.Status, Limit: deliveriesPerPage + 1,
			Offset: (page - 1) * deliveriesPerPage})
		if err != nil {
			return err
		}
		link := func(p int) string {
			n := url.Values{"page": {strconv.Itoa(p)}}
			if v.Status != "" {
				n.Set("status", v.Status)
			}
			return "/ui/admin/alerts?" + n.Encode()
		}
		if len(ds) > deliveriesPerPage {
			ds, v.Next = ds[:deliveriesPerPage], link(page+1)
		}
		if page > 1 {
			v.Prev = link(page - 1)
		}
		for _, d := range ds {
			v.Rows = append(v.Rows, deliveryRow{AlertDelivery: d, Webhook: alert.RedactURL(d.URL)})
		}
	}
	c.adminPage(w, r, http.StatusOK, "admin_alerts", "alerts", "Alerts", v)
	return nil
}

func pageParam(q url.Values) (int, error) {
	p := q.Get("page")
	if p == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 100000 {
		return 0, lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
	}
	return n, nil
}

type deletedRow struct {
	Table string
	Rows  int64
}

type adminRetentionView struct {
	Available bool
	Days      int
	Settings  []Setting
	Counts    *lodestone.FleetCounts
	Last      *lodestone.PurgeResult
	Deleted   []deletedRow
}

func (c *Console) adminRetention(w http.ResponseWriter, r *request) error {
	v := adminRetentionView{Settings: c.cfg.Admin.RetentionSettings}
	if rt := c.cfg.Admin.Retention; rt != nil {
		v.Available, v.Days = true, rt.Days()
		last, err := rt.LastRun(r.ctx())
		if err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return err
		}
		if last != nil {
			v.Last = last
			for t, n := range last.Deleted {
				v.Deleted = append(v.Deleted, deletedRow{t, n})
			}
			sort.Slice(v.Deleted, func(i, j int) bool { return v.Deleted[i].Table < v.Deleted[j].Table })
		}
	}
	if fc := c.cfg.Admin.Counts; fc != nil {
		counts, err := fc.FleetCounts(r.ctx())
		if err != nil {
			return err
		}
		v.Counts = &counts
	}
	c.adminPage(w, r, http.StatusOK, "admin_retention", "retention", "Retention", v)
	return nil
}

// adminRunRetention purges now, as POST /admin/retention does, and records the run before it starts.
func (c *Console) adminRunRetention(w http.ResponseWriter, r *request) error {
	rt := c.cfg.Admin.Retention
	if rt == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "retention is not wired on this server")
	}
	const back = "/ui/admin/retention"
	if rt.Days() <= 0 {
		return c.done(w, r, back, "", lodestone.Errorf(lodestone.ECONFLICT,
			"retention is off (RETENTION_DAYS=0): nothing is purged"))
	}
	if a := c.cfg.Admin.Audit; a != nil {
		if err := lodestone.RecordAudit(r.ctx(), a, "retention.run", lodestone.AuditRetention, "",
			map[string]int{"retention_days": rt.Days()}); err != nil {
			return err
		}
	}
	run, err := rt.Purge(r.ctx())
	if err != nil {
		return err
	}
	var n int64
	for _, d := range run.Deleted {
		n += d
	}
	return c.done(w, r, back, "Purged "+strconv.FormatInt(n, 10)+" rows older than "+
		run.Cutoff.UTC().Format("2006-01-02 15:04 UTC")+".", nil)
}

func (c *Console) adminBackupPage(w http.ResponseWriter, r *request) error {
	c.adminPage(w, r, http.StatusOK, "admin_backup", "backup", "Backup", c.cfg.Admin.Backup != nil)
	return nil
}

// adminBackup streams a snapshot of the database as a download. It is a POST with the form's token, so no other
// site can start one (a backup is heavy and is recorded in the audit log).
func (c *Console) adminBackup(w http.ResponseWriter, r *request) error {
	if c.cfg.Admin.Backup == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "backups are not available on this server")
	}
	return c.cfg.Admin.Backup(w, r.Request)
}

func (c *Console) adminDoctor(w http.ResponseWriter, r *request) error {
	if c.cfg.Admin.Doctor == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "the doctor report is not available on this server")
	}
	rep, err := c.cfg.Admin.Doctor(r.ctx())
	if err != nil {
		return err
	}
	c.adminPage(w, r, http.StatusOK, "admin_doctor", "doctor", "Doctor", rep)
	return nil
}

// adminDeleteDevice deletes a device with its telemetry, memberships, update target and keys (admin only, as
// DELETE /devices/{id}); its keys stop working on this replica at once.
func (c *Console) adminDeleteDevice(w http.ResponseWriter, r *request) error {
	if c.cfg.Registry == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not provision devices")
	}
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		return c.done(w, r, "/ui/devices/"+pathEscape(id)+"#delete", "", lodestone.Errorf(lodestone.EINVALID,
			"tick the box to confirm the deletion"))
	}
	if err := c.cfg.Registry.DeleteDevice(r.ctx(), id); err != nil {
		return c.done(w, r, "/ui/devices/"+pathEscape(id), "", err)
	}
	c.forget()
	return c.done(w, r, "/ui/devices", "Deleted device "+id+" and everything recorded about it.", nil)
}
