package console

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// maxBulkRows bounds one bulk file, which is registered in one transaction (as the API's bulk route).
const maxBulkRows = 1000

// regRow is one registration as a form or a bulk file gives it.
type regRow struct {
	Key      string `json:"device_key"`
	DeviceID string `json:"device_id"`
	Name     string `json:"name"`
	Tags     string `json:"tags"`
}

// check validates a row with the API's rules and turns it into a registration.
func (g regRow) check(by string, at time.Time) (lodestone.DeviceRegistration, error) {
	key, ok := httpapi.ParseDeviceKey(strings.TrimSpace(g.Key))
	if !ok {
		return lodestone.DeviceRegistration{}, lodestone.Errorf(lodestone.EINVALID,
			"device key %q is not 8 hex digits", truncate(g.Key, 40))
	}
	id := strings.TrimSpace(g.DeviceID)
	if len(id) > 128 || !printableASCII(id) {
		return lodestone.DeviceRegistration{}, lodestone.Errorf(lodestone.EINVALID,
			"device id must be 1-128 visible ASCII characters")
	}
	name, tags := strings.TrimSpace(g.Name), strings.TrimSpace(g.Tags)
	if len(name) > 128 || len(tags) > 1024 || !utf8.ValidString(name+tags) {
		return lodestone.DeviceRegistration{}, lodestone.Errorf(lodestone.EINVALID,
			"name is at most 128 bytes and tags at most 1024, as UTF-8 text")
	}
	reg := lodestone.DeviceRegistration{DeviceID: id, Key: key, ProvisionedBy: &by, At: at}
	if name != "" {
		reg.Name = &name
	}
	if tags != "" {
		reg.Tags = &tags
	}
	return reg, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (c *Console) registerOne(w http.ResponseWriter, r *request) error {
	if c.cfg.Registry == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not provision devices")
	}
	row := regRow{Key: r.PostFormValue("device_key"), DeviceID: r.PostFormValue("device_id"),
		Name: r.PostFormValue("name"), Tags: r.PostFormValue("tags")}
	reg, err := row.check(r.user.Name, time.Now().UTC())
	if err != nil {
		c.redirect(w, r.Request, "/ui/devices", flash{Msg: "Not registered: " + lodestone.ErrorMessage(err), Err: true})
		return nil
	}
	res, err := c.cfg.Registry.RegisterDevices(r.ctx(), []lodestone.DeviceRegistration{reg})
	if err != nil {
		return err
	}
	if res[0].Err != nil {
		c.redirect(w, r.Request, "/ui/devices", flash{Msg: "Not registered: " + lodestone.ErrorMessage(res[0].Err),
			Err: true})
		return nil
	}
	c.redirect(w, r.Request, "/ui/devices/"+pathEscape(res[0].Device.DeviceID),
		flash{Msg: "Registered device " + res[0].Device.DeviceID + "."})
	return nil
}

// registerBulk registers a CSV (header device_key,device_id,name,tags; device_key required) or JSON (an array
// of objects with those fields) file; each row is stored or refused on its own and the flash lists the refused.
func (c *Console) registerBulk(w http.ResponseWriter, r *request) error {
	if c.cfg.Registry == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not provision devices")
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		c.redirect(w, r.Request, "/ui/devices", flash{Msg: "Choose a CSV or JSON file to register.", Err: true})
		return nil
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFormBytes))
	if err != nil {
		return lodestone.Errorf(lodestone.EINVALID, "read the file: %v", err)
	}
	var rows []regRow
	if strings.HasSuffix(strings.ToLower(hdr.Filename), ".json") || strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
		err = json.Unmarshal(raw, &rows)
		if err != nil {
			err = lodestone.Errorf(lodestone.EINVALID, "the JSON file is not an array of devices: %v", err)
		}
	} else {
		rows, err = parseCSV(string(raw))
	}
	if err == nil && len(rows) == 0 {
		err = lodestone.Errorf(lodestone.EINVALID, "the file lists no devices")
	}
	if err == nil && len(rows) > maxBulkRows {
		err = lodestone.Errorf(lodestone.EINVALID, "at most %d devices per file, this one has %d", maxBulkRows, len(rows))
	}
	if err != nil {
		c.redirect(w, r.Request, "/ui/devices", flash{Msg: "Nothing registered: " + lodestone.ErrorMessage(err), Err: true})
		return nil
	}
	now := time.Now().UTC()
	out := flash{}
	var regs []lodestone.DeviceRegistration
	var index []int
	for i, row := range rows {
		reg, err := row.check(r.user.Name, now)
		if err != nil {
			out.Rows = append(out.Rows, flashRow{Row: i + 1, DeviceID: truncate(row.DeviceID, 40), Error: lodestone.ErrorMessage(err)})
			continue
		}
		regs = append(regs, reg)
		index = append(index, i)
	}
	ok := 0
	if len(regs) > 0 {
		res, err := c.cfg.Registry.RegisterDevices(r.ctx(), regs)
		if err != nil {
			return err
		}
		for j, res := range res {
			if res.Err != nil {
				out.Rows = append(out.Rows, flashRow{Row: index[j] + 1, DeviceID: truncate(rows[index[j]].DeviceID, 40),
					Error: lodestone.ErrorMessage(res.Err)})
				continue
			}
			ok++
		}
	}
	sortRows(out.Rows)
	out.Msg = fmt.Sprintf("Registered %d of %d devices from %s.", ok, len(rows), truncate(hdr.Filename, 60))
	out.Err = ok < len(rows)
	c.redirect(w, r.Request, "/ui/devices", out)
	return nil
}

func sortRows(rows []flashRow) {
	for i := 1; i < len(rows); i++ {
		for j := i; j > 0 && rows[j].Row < rows[j-1].Row; j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
}

// parseCSV reads a bulk CSV; the header names the columns (device_key is required, the others optional).
func parseCSV(s string) ([]regRow, error) {
	cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(s, "\ufeff")))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, lodestone.Errorf(lodestone.EINVALID, "the CSV file has no header row")
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	if _, ok := col["device_key"]; !ok {
		return nil, lodestone.Errorf(lodestone.EINVALID, "the CSV header must name a device_key column (and may name device_id, name, tags)")
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []regRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, lodestone.Errorf(lodestone.EINVALID, "the CSV file is malformed: %v", err)
		}
		rows = append(rows, regRow{Key: get(rec, "device_key"), DeviceID: get(rec, "device_id"),
			Name: get(rec, "name"), Tags: get(rec, "tags")})
	}
	return rows, nil
}
