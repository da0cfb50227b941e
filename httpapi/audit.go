package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func (s *Server) routesAudit() {
	s.handle("GET /admin/audit", AccessAdmin, s.listAudit)
}

// auditTime is an entry's time as the API writes it: RFC 3339 with the milliseconds the hash covers, so a client
// can check the chain from the JSON alone.
const auditTime = "2006-01-02T15:04:05.000Z07:00"

// AuditEntryJSON is one entry of GET /admin/audit.
type AuditEntryJSON struct {
	ID         int64           `json:"id"`
	Time       string          `json:"time"`
	ActorKind  string          `json:"actor_kind"`
	Actor      string          `json:"actor"`
	ActorID    string          `json:"actor_id"`
	Action     string          `json:"action"`
	TargetKind string          `json:"target_kind"`
	Target     string          `json:"target"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	ClientAddr string          `json:"client_addr"`
	RequestID  string          `json:"request_id"`
	Via        string          `json:"via"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

// AuditPageJSON is the answer of GET /admin/audit: entries newest first, the link to the next (older) page or
// null, and the chain head, so a client can verify the chain it pages through.
type AuditPageJSON struct {
	Entries []AuditEntryJSON    `json:"entries"`
	Next    *string             `json:"next"`
	Head    lodestone.AuditHead `json:"head"`
}

// NewAuditEntryJSON is e as the API writes it.
func NewAuditEntryJSON(e *lodestone.AuditEntry) AuditEntryJSON {
	j := AuditEntryJSON{ID: e.ID, Time: e.Time.UTC().Format(auditTime), ActorKind: e.ActorKind, Actor: e.Actor,
		ActorID: e.ActorID, Action: e.Action, TargetKind: e.TargetKind, Target: e.Target, Before: e.Before,
		After: e.After, ClientAddr: e.ClientAddr, RequestID: e.RequestID, Via: e.Via, PrevHash: e.PrevHash,
		Hash: e.Hash}
	if len(j.Before) == 0 {
		j.Before = json.RawMessage("null")
	}
	if len(j.After) == 0 {
		j.After = json.RawMessage("null")
	}
	return j
}

// Entry is j back as an entry, with the bytes of its images as they were hashed.
func (j AuditEntryJSON) Entry() (*lodestone.AuditEntry, error) {
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return nil, fmt.Errorf("audit entry %d: time %q: %w", j.ID, j.Time, err)
	}
	e := &lodestone.AuditEntry{ID: j.ID, Time: t.UTC(), ActorKind: j.ActorKind, Actor: j.Actor, ActorID: j.ActorID,
		Action: j.Action, TargetKind: j.TargetKind, Target: j.Target, ClientAddr: j.ClientAddr,
		RequestID: j.RequestID, Via: j.Via, PrevHash: j.PrevHash, Hash: j.Hash}
	if string(j.Before) != "null" && len(j.Before) > 0 {
		e.Before = j.Before
	}
	if string(j.After) != "null" && len(j.After) > 0 {
		e.After = j.After
	}
	return e, nil
}

// auditFilter reads GET /admin/audit's query: actor, action (a trailing ".*" matches a prefix), target,
// target_kind, since, until, before (the id cursor of the next page) and limit.
func auditFilter(q url.Values) (lodestone.AuditFilter, error) {
	f := lodestone.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"),
		TargetKind: q.Get("target_kind")}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return f, err
	}
	if v := q.Get("before"); v != "" {
		if f.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil || f.BeforeID <= 0 {
			return f, lodestone.Errorf(lodestone.EINVALID, "before must be an entry id (a positive integer), got %q", v)
		}
	}
	return f, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Audit == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "the audit log is not available on this server")
	}
	q := r.URL.Query()
	f, err := auditFilter(q)
	if err != nil {
		return err
	}
	f.Limit = lodestone.ClampLimit(f.Limit)
	head, err := s.deps.Audit.AuditHead(r.Context())
	if err != nil {
		return err
	}
	es, err := s.deps.Audit.FindAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := AuditPageJSON{Entries: make([]AuditEntryJSON, 0, len(es)), Head: head}
	for _, e := range es {
		out.Entries = append(out.Entries, NewAuditEntryJSON(e))
	}
	if len(es) == f.Limit {
		q.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		next := "/admin/audit?" + q.Encode()
		out.Next = &next
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}

// audit records an action that changes no row (a backup download, the start of a retention run) for the caller
// ctx carries; after must hold no secret. Without an audit log nothing is recorded.
func (s *Server) audit(ctx context.Context, action, kind, target string, after any) error {
	if s.deps.Audit == nil {
		return nil
	}
	return lodestone.RecordAudit(ctx, s.deps.Audit, action, kind, target, after)
}
