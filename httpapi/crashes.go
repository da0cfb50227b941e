package httpapi

import (
	"io"
	"net/http"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// crashGroupJSON is ferrite's CrashGroup, then lodestone's triage fields.
type crashGroupJSON struct {
	ID                  int64   `json:"id"`
	SignatureHash       string  `json:"signature_hash"`
	PC                  uint32  `json:"pc"`
	FaultType           uint8   `json:"fault_type"`
	FirstSeen           string  `json:"first_seen"`
	LastSeen            string  `json:"last_seen"`
	OccurrenceCount     int64   `json:"occurrence_count"`
	AffectedDeviceCount int64   `json:"affected_device_count"`
	Title               *string `json:"title"`

	FaultTypeName    string   `json:"fault_type_name"`
	State            string   `json:"state"`
	Regression       bool     `json:"regression"`
	ResolvedVersion  string   `json:"resolved_version,omitempty"`
	FirmwareVersions []string `json:"firmware_versions"`
	MergedInto       *int64   `json:"merged_into,omitempty"`
}

func newCrashGroupJSON(g *lodestone.CrashGroup) crashGroupJSON {
	versions := g.FirmwareVersions
	if versions == nil {
		versions = []string{}
	}
	return crashGroupJSON{ID: g.ID, SignatureHash: g.Signature, PC: g.PC, FaultType: g.FaultType,
		FirstSeen: ts(g.FirstSeen), LastSeen: ts(g.LastSeen), OccurrenceCount: g.Occurrences,
		AffectedDeviceCount: g.AffectedDevices, Title: g.Title, FaultTypeName: chunk.FaultTypeName(g.FaultType),
		State: string(g.State), Regression: g.Regression, ResolvedVersion: g.ResolvedVersion,
		FirmwareVersions: versions, MergedInto: g.MergedInto}
}

func (s *Server) crashesReady() error {
	if s.deps.Crashes == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "crash groups are not configured on this server")
	}
	return nil
}

// listCrashes implements GET /crashes: ferrite's {"crash_groups":[...],"total":N}, most frequent first.
func (s *Server) listCrashes(w http.ResponseWriter, r *http.Request) error {
	if err := s.crashesReady(); err != nil {
		return err
	}
	q := r.URL.Query()
	f := lodestone.CrashFilter{State: lodestone.CrashState(q.Get("state"))}
	switch f.State {
	case "", lodestone.CrashOpen, lodestone.CrashResolved, lodestone.CrashMuted, lodestone.CrashMerged:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "state must be one of open, resolved, muted, merged")
	}
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return err
	}
	groups, total, err := s.deps.Crashes.FindCrashGroups(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]crashGroupJSON, len(groups))
	for i, g := range groups {
		out[i] = newCrashGroupJSON(g)
	}
	writeJSON(w, http.StatusOK, map[string]any{"crash_groups": out, "total": total})
	return nil
}

// getCrash implements GET /crashes/{id}: ferrite's {"group":...,"occurrences":[...]}, occurrences newest first
// with their backtraces and causes.
func (s *Server) getCrash(w http.ResponseWriter, r *http.Request) error {
	if err := s.crashesReady(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	f, err := telemetryFilter(r.URL.Query())
	if err != nil {
		return err
	}
	g, err := s.deps.Crashes.FindCrashGroupByID(r.Context(), id)
	if err != nil {
		return err
	}
	occ, err := s.deps.Crashes.FindCrashOccurrences(r.Context(), id, f)
	if err != nil {
		return err
	}
	out := make([]faultJSON, len(occ))
	for i, f := range occ {
		out[i] = newFaultJSON(f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": newCrashGroupJSON(g), "occurrences": out})
	return nil
}

// decodeBody reads a small JSON request body into v.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return lodestone.Errorf(lodestone.EINVALID, "could not read the request body")
	}
	return unmarshalJSON(body, v) // the shared rules: no duplicate keys, NUL or invalid UTF-8
}

// patchCrash implements PATCH /crashes/{id} {"state":"open|resolved|muted"}.
func (s *Server) patchCrash(w http.ResponseWriter, r *http.Request) error {
	if err := s.crashesReady(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var body struct {
		State *string `json:"state"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.State == nil {
		return lodestone.Errorf(lodestone.EINVALID, `body must set "state" to open, resolved or muted`)
	}
	g, err := s.deps.Crashes.SetCrashGroupState(r.Context(), id, lodestone.CrashState(*body.State))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": newCrashGroupJSON(g)})
	return nil
}

// mergeCrash implements POST /crashes/{id}/merge {"into": target}: the group's faults move to target, and its
// signature leads there from now on.
func (s *Server) mergeCrash(w http.ResponseWriter, r *http.Request) error {
	if err := s.crashesReady(); err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var body struct {
		Into int64 `json:"into"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Into <= 0 {
		return lodestone.Errorf(lodestone.EINVALID, `body must set "into" to the id of the group to merge into`)
	}
	g, err := s.deps.Crashes.MergeCrashGroups(r.Context(), id, body.Into)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"group": newCrashGroupJSON(g)})
	return nil
}

// routesCrashes registers the ELF and crash group routes.
func (s *Server) routesCrashes() {
	s.handle("POST /ingest/elf", AccessProvisioner, s.uploadELF)
	s.handle("GET /elfs", AccessViewer, s.listELFs)
	s.handle("GET /elfs/{id}", AccessViewer, s.getELF)
	s.handle("DELETE /elfs/{id}", AccessProvisioner, s.deleteELF)
	s.handle("GET /crashes", AccessViewer, s.listCrashes)
	s.handle("GET /crashes/{id}", AccessViewer, s.getCrash)
	s.handle("PATCH /crashes/{id}", AccessProvisioner, s.patchCrash)
	s.handle("POST /crashes/{id}/merge", AccessProvisioner, s.mergeCrash)
}
