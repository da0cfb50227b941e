package console

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
)

// This file holds the device report: GET /report/devices as a page, each device with its faults, metric samples
// and reboots counted, filtered by status and paged.

// morePages are the templates of the pages that close part 2's gaps.
var morePages = []string{"device_report", "stability"}

const reportPerPage = 100

type deviceReportView struct {
	Available  bool
	Status     string
	Rows       []*lodestone.DeviceSummary
	Page       int
	Prev, Next string
}

func (c *Console) deviceReport(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	v := deviceReportView{Status: q.Get("status"), Page: 1}
	switch lodestone.DeviceStatus(v.Status) {
	case "", lodestone.StatusUnknown, lodestone.StatusProvisioned, lodestone.StatusOnline, lodestone.StatusOffline:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be one of unknown, provisioned, online, offline")
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a positive number")
		}
		v.Page = n
	}
	if c.cfg.Reports != nil {
		v.Available = true
		rows, err := c.cfg.Reports.DeviceSummaries(r.ctx(), lodestone.DeviceFilter{
			Status: lodestone.DeviceStatus(v.Status), Limit: reportPerPage + 1, Offset: (v.Page - 1) * reportPerPage})
		if err != nil {
			return err
		}
		link := func(page int) string {
			n := url.Values{"page": {strconv.Itoa(page)}}
			if v.Status != "" {
				n.Set("status", v.Status)
			}
			return "/ui/report/devices?" + n.Encode()
		}
		if len(rows) > reportPerPage {
			rows, v.Next = rows[:reportPerPage], link(v.Page+1)
		}
		if v.Page > 1 {
			v.Prev = link(v.Page - 1)
		}
		v.Rows = rows
	}
	c.page(w, r, "device_report", "Device report", v, func(pd *pageData) { pd.Nav = "devices" })
	return nil
}
