package httpapi

import (
	"net/http"

	"github.com/lodestone-fleet/lodestone"
)

// routesMCP registers the MCP endpoint and the fleet summary its agents start from. MCP over streamable HTTP is
// one POST per message (the handler is stateless, so any replica answers); its tools call the routes of this
// table in-process, each with the access it has here.
func (s *Server) routesMCP() {
	s.handle("POST /mcp", AccessViewer, s.serveMCP)
	s.handle("GET /fleet/summary", AccessViewer, s.fleetSummary)
}

// MountMCP sets the handler behind POST /mcp. It is built from this server's Handler and Routes, so it is set
// after New and before the server starts serving; until then the route answers 503.
func (s *Server) MountMCP(h http.Handler) { s.mcp = h }

func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) error {
	if s.mcp == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "the MCP server is not enabled here")
	}
	s.mcp.ServeHTTP(w, r)
	return nil
}

// fleetSummary answers GET /fleet/summary: how many devices there are, how many are online, the stored
// telemetry rows and the crash issues by state.
func (s *Server) fleetSummary(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Counts == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "fleet counts are not available on this server")
	}
	ctx := r.Context()
	n, err := s.deps.Counts.FleetCounts(ctx)
	if err != nil {
		return err
	}
	out := fleetSummaryReply{Devices: n.Devices, DevicesOnline: n.DevicesOnline, Groups: n.Groups,
		Faults: n.Faults, Metrics: n.Metrics, Reboots: n.Reboots}
	if s.deps.Crashes != nil {
		issues := &crashIssueCounts{}
		for st, count := range map[lodestone.CrashState]*int64{lodestone.CrashOpen: &issues.Open,
			lodestone.CrashResolved: &issues.Resolved, lodestone.CrashMuted: &issues.Muted} {
			_, total, err := s.deps.Crashes.FindCrashGroups(ctx, lodestone.CrashFilter{State: st, Limit: 1})
			if err != nil {
				return err
			}
			*count = int64(total)
		}
		out.CrashIssues = issues
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
