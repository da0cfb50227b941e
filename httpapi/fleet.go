package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// routesFleet registers device provisioning and groups, on ferrite's paths.
func (s *Server) routesFleet() {
	s.handle("POST /devices/register", AccessProvisioner, s.registerDevice)
	s.handle("POST /devices/register/bulk", AccessProvisioner, s.registerDevices)
	s.handle("PUT /devices/{id}", AccessProvisioner, s.updateDevice)
	s.handle("DELETE /devices/{id}", AccessAdmin, s.deleteDevice)
	s.handle("DELETE /admin/devices/{deviceID}", AccessAdmin, s.deleteDeviceByID)
	s.routesGroups()
}

// maxBulkDevices bounds one bulk registration, which runs in one transaction.
const maxBulkDevices = 1000

func (s *Server) registry() (lodestone.DeviceRegistry, error) {
	if s.deps.Registry == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not provision devices")
	}
	return s.deps.Registry, nil
}

// registration is ferrite's register body: device_key is the u32 key in hex (dashes and 0x allowed). device_id
// is lodestone's addition: it gives the key to the device that reports under that id.
type registration struct {
	DeviceKey     string  `json:"device_key"`
	DeviceID      *string `json:"device_id"`
	Name          *string `json:"name"`
	Tags          *string `json:"tags"`
	ProvisionedBy *string `json:"provisioned_by"`
}

// check validates the body and turns it into a registration; a bad key is ferrite's message.
func (g *registration) check(by string, at time.Time) (lodestone.DeviceRegistration, error) {
	key, ok := ParseDeviceKey(g.DeviceKey)
	if !ok {
		return lodestone.DeviceRegistration{}, lodestone.Errorf(lodestone.EINVALID, "invalid device_key hex")
	}
	fe := FieldErrors{}
	if g.DeviceID != nil && !validDeviceHeader(*g.DeviceID) {
		fe.Add("device_id", "must be 1-128 visible ASCII characters")
	}
	for field, v := range map[string]*string{"name": g.Name, "provisioned_by": g.ProvisionedBy} {
		if v != nil && len(*v) > 128 {
			fe.Add(field, "must be at most 128 bytes")
		}
	}
	if g.Tags != nil && len(*g.Tags) > 1024 {
		fe.Add("tags", "must be at most 1024 bytes")
	}
	if err := fe.Err(); err != nil {
		return lodestone.DeviceRegistration{}, err
	}
	r := lodestone.DeviceRegistration{Key: key, Name: g.Name, Tags: g.Tags, ProvisionedBy: g.ProvisionedBy, At: at}
	if g.DeviceID != nil {
		r.DeviceID = *g.DeviceID
	}
	if r.ProvisionedBy == nil && by != "" {
		r.ProvisionedBy = &by // ferrite leaves it empty unless the body says; the caller is who provisioned
	}
	return r, nil
}

func caller(r *http.Request) string {
	if p := PrincipalFrom(r.Context()); p != nil {
		return p.Name
	}
	return ""
}

// registerDevice answers POST /devices/register: 200 {"device":…} as ferrite answers (its docs say 201).
func (s *Server) registerDevice(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	var body registration
	if err := DecodeJSON(w, r, &body, 0); err != nil {
		return err
	}
	dr, err := body.check(caller(r), time.Now().UTC())
	if err != nil {
		return err
	}
	res, err := reg.RegisterDevices(r.Context(), []lodestone.DeviceRegistration{dr})
	if err != nil {
		return err
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": newDeviceJSON(res[0].Device)})
	return nil
}

// bulkResult is one row's outcome, lodestone's addition to ferrite's answer.
type bulkResult struct {
	Index    int    `json:"index"`
	DeviceID string `json:"device_id,omitempty"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// registerDevices answers POST /devices/register/bulk: a JSON array of registrations, each stored or refused on
// its own. ferrite's {"registered","devices","errors"} with 200, or 207 when some rows failed; "results" says per
// row (by index) what happened. A row of the wrong shape fails alone instead of failing the request.
func (s *Server) registerDevices(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	var rows []json.RawMessage
	if err := DecodeJSON(w, r, &rows, s.cfg.MaxBodyBytes); err != nil {
		return err
	}
	if len(rows) > maxBulkDevices {
		return lodestone.Errorf(lodestone.EINVALID, "at most %d devices per request, got %d", maxBulkDevices, len(rows))
	}
	now, by := time.Now().UTC(), caller(r)
	results := make([]bulkResult, len(rows))
	var regs []lodestone.DeviceRegistration
	var index []int // regs[i] is row index[i]
	for i, raw := range rows {
		results[i].Index = i
		var body registration
		if err := checkJSON(raw, false); err != nil {
			results[i].Error = fmt.Sprintf("row %d: %s", i, lodestone.ErrorMessage(err))
			continue
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			results[i].Error = fmt.Sprintf("row %d: not a registration object", i)
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) && typ.Field != "" {
				results[i].Error = fmt.Sprintf("row %d: %s must be %s", i, typ.Field,
					typeName(typ.Type.Kind().String()))
			}
			continue
		}
		dr, err := body.check(by, now)
		if err != nil {
			results[i].Error = fmt.Sprintf("invalid device_key: %s", body.DeviceKey) // ferrite's text
			var fe FieldErrors
			if errors.As(err, &fe) {
				results[i].Error = fmt.Sprintf("%s: %v", body.DeviceKey, fe)
			}
			continue
		}
		regs, index = append(regs, dr), append(index, i)
	}
	stored, err := reg.RegisterDevices(r.Context(), regs)
	if err != nil {
		return err
	}
	devices, errs := []deviceJSON{}, []string{}
	for j, res := range stored {
		i := index[j]
		if res.Err != nil {
			results[i].Error = fmt.Sprintf("%s: %s", rawKey(rows[i]), lodestone.ErrorMessage(res.Err))
			continue
		}
		results[i].OK, results[i].DeviceID = true, res.Device.DeviceID
		devices = append(devices, newDeviceJSON(res.Device))
	}
	for _, res := range results {
		if !res.OK {
			errs = append(errs, res.Error)
		}
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, map[string]any{"registered": len(devices), "devices": devices, "errors": errs,
		"results": results})
	return nil
}

func rawKey(raw json.RawMessage) string {
	var k struct {
		DeviceKey string `json:"device_key"`
	}
	json.Unmarshal(raw, &k)
	return k.DeviceKey
}

type deviceUpdate struct {
	Name *string `json:"name"`
	Tags *string `json:"tags"`
}

func (u *deviceUpdate) Validate() error {
	fe := FieldErrors{}
	if u.Name != nil && len(*u.Name) > 128 {
		fe.Add("name", "must be at most 128 bytes")
	}
	if u.Tags != nil && len(*u.Tags) > 1024 {
		fe.Add("tags", "must be at most 1024 bytes")
	}
	return fe.Err()
}

// updateDevice answers PUT /devices/{id} (hex key or device_id): name and tags, null keeps. Unlike ferrite it
// leaves last_seen alone: an edit is not contact from the device.
func (s *Server) updateDevice(w http.ResponseWriter, r *http.Request) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	var body deviceUpdate
	if err := DecodeJSON(w, r, &body, 0); err != nil {
		return err
	}
	d, err := s.findDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if d, err = reg.UpdateDevice(r.Context(), d.DeviceID, lodestone.DeviceUpdate{Name: body.Name,
		Tags: body.Tags}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": newDeviceJSON(d)})
	return nil
}

// deleteDevice answers DELETE /devices/{id} (hex key or device_id).
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.findDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.removeDevice(w, r, d.DeviceID)
}

// deleteDeviceByID answers DELETE /admin/devices/{deviceID}, by device_id only.
func (s *Server) deleteDeviceByID(w http.ResponseWriter, r *http.Request) error {
	return s.removeDevice(w, r, r.PathValue("deviceID"))
}

// removeDevice deletes the device with its telemetry, memberships, OTA target and device keys; its keys stop
// working on this replica at once.
func (s *Server) removeDevice(w http.ResponseWriter, r *http.Request, deviceID string) error {
	reg, err := s.registry()
	if err != nil {
		return err
	}
	if err := reg.DeleteDevice(r.Context(), deviceID); err != nil {
		return err
	}
	s.forget()
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	return nil
}
