package httpapi

import (
	"context"
	"net/http"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/doctor"
)

// Accounts is the authenticator that manages users (password hashing, the users from the environment, the cache
// of verified credentials), for the web console's user pages; nil when the server was built without one.
func (s *Server) Accounts() *Authn {
	a, _ := s.deps.Auth.(*Authn)
	return a
}

// ServeBackup streams a backup exactly as GET /admin/backup does (one at a time with the API's, recorded in the
// audit log for the caller r's context carries), for the web console. The caller checks the role.
func (s *Server) ServeBackup(w http.ResponseWriter, r *http.Request) error { return s.backup(w, r) }

// DoctorReport runs the health checks of GET /admin/doctor, for the web console.
func (s *Server) DoctorReport(ctx context.Context) (doctor.Report, error) {
	if s.deps.Doctor == nil {
		return doctor.Report{}, lodestone.Errorf(lodestone.EUNAVAILABLE, "the doctor report is not available on this server")
	}
	return s.deps.Doctor(ctx), nil
}
