package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := lodestone.DeviceFilter{Status: lodestone.DeviceStatus(q.Get("status"))}
	switch f.Status {
	case "", lodestone.StatusUnknown, lodestone.StatusProvisioned, lodestone.StatusOnline, lodestone.StatusOffline:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be one of unknown, provisioned, online, offline")
	}
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return err
	}
	if f.Limit == 0 {
		f.Limit = lodestone.MaxListLimit // ferrite lists every device; keep its clients whole for fleets up to this
	}
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

// getDevice answers GET /devices/{id}. ferrite addresses this route by the hex device key (its CLI and dashboard
// send keys such as A300F1B2 or A3-00F1B2); lodestone also accepts the device_id, which is tried first.
func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	d, err := s.deps.Devices.FindDeviceByID(r.Context(), id)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		if key, ok := ParseDeviceKey(id); ok {
			d, err = s.deps.Devices.FindDeviceByKey(r.Context(), key)
		}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": newDeviceJSON(d)})
	return nil
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
