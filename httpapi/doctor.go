package httpapi

import (
	"net/http"

	"github.com/lodestone-fleet/lodestone"
)

func (s *Server) routesDoctor() {
	s.handle("GET /admin/doctor", AccessAdmin, s.doctor)
}

// doctor answers GET /admin/doctor with the health checks that make sense inside the server (package doctor).
// The answer is 200 whatever the checks found: the report is the result, and its summary says whether any check
// is an error.
func (s *Server) doctor(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Doctor == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "doctor: the health checks are not available on this server")
	}
	rep := s.deps.Doctor(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, rep)
	return nil
}
