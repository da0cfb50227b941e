package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// listDevices answers GET /devices: ferrite's list, plus filters (status, group_id, tag, firmware_version) and an
// explicit order (sort, order), always ending with the row id so that paging with offset is stable.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	f, err := deviceFilter(r.URL.Query())
	if err != nil {
		return err
	}
	return s.writeDevices(w, r, f)
}

func (s *Server) writeDevices(w http.ResponseWriter, r *http.Request, f lodestone.DeviceFilter) error {
	devs, err := s.deps.Devices.FindDevices(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]deviceJSON, len(devs))
	for i, d := range devs {
		out[i] = newDeviceJSON(d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

func deviceFilter(q url.Values) (lodestone.DeviceFilter, error) {
	f := lodestone.DeviceFilter{Status: lodestone.DeviceStatus(q.Get("status")), Tag: q.Get("tag"),
		FirmwareVersion: q.Get("firmware_version"), Sort: lodestone.DeviceSort(q.Get("sort")),
		Search: q.Get("search")}
	switch f.Status {
	case "", lodestone.StatusUnknown, lodestone.StatusProvisioned, lodestone.StatusOnline, lodestone.StatusOffline:
	default:
		return f, lodestone.Errorf(lodestone.EINVALID, "status must be one of unknown, provisioned, online, offline")
	}
	if f.Sort != "" && !slices.Contains(lodestone.DeviceSorts, f.Sort) {
		return f, lodestone.Errorf(lodestone.EINVALID,
			"sort must be one of last_seen, first_seen, device_id, name, firmware_version, status, id")
	}
	// Times sort newest first unless asked otherwise; names and ids sort A to Z.
	f.Ascending = f.Sort != "" && f.Sort != lodestone.SortLastSeen && f.Sort != lodestone.SortFirstSeen
	switch q.Get("order") {
	case "":
	case "asc":
		f.Ascending = true
	case "desc":
		f.Ascending = false
	default:
		return f, lodestone.Errorf(lodestone.EINVALID, "order must be asc or desc")
	}
	for _, name := range []string{"group_id", "group"} {
		if v := q.Get(name); v != "" {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return f, lodestone.Errorf(lodestone.EINVALID, "%s must be a positive integer, got %q", name, v)
			}
			f.GroupID = id
		}
	}
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return f, err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return f, err
	}
	if f.Limit == 0 {
		f.Limit = lodestone.MaxListLimit // ferrite lists every device; keep its clients whole for fleets up to this
	}
	return f, nil
}

// getDevice answers GET /devices/{id}. ferrite addresses this route by the hex device key (its CLI and dashboard
// send keys such as A300F1B2 or A3-00F1B2); lodestone also accepts the device_id, which is tried first.
func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.findDevice(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": newDeviceJSON(d)})
	return nil
}

// findDevice finds a device by device_id, else by hex device key.
func (s *Server) findDevice(ctx context.Context, id string) (*lodestone.Device, error) {
	d, err := s.deps.Devices.FindDeviceByID(ctx, id)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		if key, ok := ParseDeviceKey(id); ok {
			d, err = s.deps.Devices.FindDeviceByKey(ctx, key)
		}
	}
	return d, err
}

// ParseDeviceKey reads a device key the way ferrite does: dashes and 0x prefixes removed, then up to eight hex
// digits.
func ParseDeviceKey(s string) (uint32, bool) {
	s = strings.ReplaceAll(s, "-", "")
	s = strings.ReplaceAll(s, "0x", "")
	s = strings.ReplaceAll(s, "0X", "")
	s = strings.TrimPrefix(s, "+")
	if s == "" || len(s) > 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

// list answers a telemetry list route: the query's filter plus the {id} path value, one lookup, and the results
// under key in ferrite's JSON shape.
func list[T, J any](w http.ResponseWriter, r *http.Request, key string,
	find func(context.Context, lodestone.TelemetryFilter) ([]*T, error), toJSON func(*T) J) error {
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.DeviceID = r.PathValue("id")
	found, err := find(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]J, len(found))
	for i, v := range found {
		out[i] = toJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{key: out})
	return nil
}

func (s *Server) listFaults(w http.ResponseWriter, r *http.Request) error {
	return list(w, r, "faults", s.deps.Telemetry.FindFaults, newFaultJSON)
}

func (s *Server) listMetrics(w http.ResponseWriter, r *http.Request) error {
	key := r.URL.Query().Get("key")
	return list(w, r, "metrics", func(ctx context.Context, f lodestone.TelemetryFilter) ([]*lodestone.Metric, error) {
		return s.deps.Telemetry.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: f, Key: key})
	}, newMetricJSON)
}

func (s *Server) listReboots(w http.ResponseWriter, r *http.Request) error {
	return list(w, r, "reboots", s.deps.Telemetry.FindReboots, newRebootJSON)
}

func (s *Server) listHeartbeats(w http.ResponseWriter, r *http.Request) error {
	return list(w, r, "heartbeats", s.deps.Telemetry.FindHeartbeats, newHeartbeatJSON)
}

func (s *Server) listTraces(w http.ResponseWriter, r *http.Request) error {
	return list(w, r, "traces", s.deps.Telemetry.FindTraces, newTraceJSON)
}
