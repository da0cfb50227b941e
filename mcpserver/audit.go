package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// record appends the audit entry of one tool call before it runs: the caller, the tool as action "mcp.<tool>",
// its target and arguments, and the outcome so far (called, confirmation_requested, confirmed or refused). No
// argument is a secret, and confirmation tokens are never recorded.
func (s *Server) record(ctx context.Context, p *lodestone.Principal, t bound, args map[string]any, outcome,
	reason string) error {
	if s.opts.Audit == nil {
		return nil
	}
	e := &lodestone.AuditEntry{Time: s.opts.Now().UTC(), ActorKind: lodestone.ActorUser, Action: "mcp." + t.Name,
		TargetKind: t.TargetKind, Via: lodestone.ViaMCP}
	if p != nil {
		e.Actor = p.Name
		if strings.HasPrefix(p.Name, "token:") {
			e.ActorKind = lodestone.ActorToken
		}
	}
	ar := lodestone.AuditRequestFromContext(ctx)
	e.ClientAddr, e.RequestID = ar.ClientAddr, ar.RequestID
	for _, name := range []string{"id", "device_id", "device"} {
		if v, ok := args[name]; ok {
			e.Target = fmt.Sprint(v)
			break
		}
	}
	if e.Target == "" {
		e.TargetKind = ""
	}
	detail := map[string]any{"outcome": outcome}
	if t.Route != "" {
		detail["route"] = t.Route
	}
	if args != nil {
		detail["arguments"] = args
	}
	if reason != "" {
		detail["reason"] = reason
	}
	after, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	e.After = after
	if err := s.opts.Audit.AppendAudit(ctx, e); err != nil {
		s.opts.Logger.Error("mcp: record audit entry", "action", e.Action, "err", err)
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "audit: the call could not be recorded, so it did not run")
	}
	return nil
}
