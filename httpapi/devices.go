package httpapi

import (
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

func (s *Server) listFaults(w http.ResponseWriter, r *http.Request) error {
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.DeviceID = r.PathValue("id")
	faults, err := s.deps.Telemetry.FindFaults(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]faultJSON, len(faults))
	for i, v := range faults {
		out[i] = newFaultJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": out})
	return nil
}

func (s *Server) listMetrics(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	tf, err := telemetryFilter(q)
	if err != nil {
		return err
	}
	tf.DeviceID = r.PathValue("id")
	metrics, err := s.deps.Telemetry.FindMetrics(r.Context(), lodestone.MetricFilter{TelemetryFilter: tf,
		Key: q.Get("key")})
	if err != nil {
		return err
	}
	out := make([]metricJSON, len(metrics))
	for i, v := range metrics {
		out[i] = newMetricJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"metrics": out})
	return nil
}

func (s *Server) listReboots(w http.ResponseWriter, r *http.Request) error {
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.DeviceID = r.PathValue("id")
	reboots, err := s.deps.Telemetry.FindReboots(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]rebootJSON, len(reboots))
	for i, v := range reboots {
		out[i] = newRebootJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"reboots": out})
	return nil
}

func (s *Server) listHeartbeats(w http.ResponseWriter, r *http.Request) error {
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.DeviceID = r.PathValue("id")
	hbs, err := s.deps.Telemetry.FindHeartbeats(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]heartbeatJSON, len(hbs))
	for i, v := range hbs {
		out[i] = newHeartbeatJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"heartbeats": out})
	return nil
}

func (s *Server) listTraces(w http.ResponseWriter, r *http.Request) error {
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.DeviceID = r.PathValue("id")
	traces, err := s.deps.Telemetry.FindTraces(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]traceJSON, len(traces))
	for i, v := range traces {
		out[i] = newTraceJSON(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"traces": out})
	return nil
}
