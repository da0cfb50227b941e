package httpapi

import (
	"context"
	"net/http"

	"github.com/lodestone-fleet/lodestone"
)

// Access is what a route demands of its caller. Every route is registered with one, so the route table is also
// the authorization table and a test can walk it.
type Access int

const (
	AccessPublic      Access = iota // anyone: health, readiness, auth mode
	AccessDevice                    // a device: the ingest key when one is configured, or a device's own key
	AccessViewer                    // a user or token with at least the viewer role
	AccessProvisioner               // at least provisioner
	AccessAdmin                     // admin only
)

func (a Access) String() string {
	return [...]string{"public", "device", "viewer", "provisioner", "admin"}[a]
}

// Role is the least role that satisfies a user-level access.
func (a Access) Role() lodestone.Role {
	switch a {
	case AccessViewer:
		return lodestone.RoleViewer
	case AccessProvisioner:
		return lodestone.RoleProvisioner
	case AccessAdmin:
		return lodestone.RoleAdmin
	}
	return lodestone.RoleNone
}

// Route is one entry of the route table.
type Route struct {
	Pattern string // net/http pattern, "METHOD /path/{var}"
	Access  Access
}

// Routes returns every registered route with its access, in registration order.
func (s *Server) Routes() []Route { return append([]Route(nil), s.table...) }

// Authenticator turns a request's credentials into a principal. It returns (nil, nil) when the request carries
// no credentials, and an EUNAUTHORIZED error when it carries bad ones.
type Authenticator interface {
	Authenticate(r *http.Request) (*lodestone.Principal, error)
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller of a request, or nil.
func PrincipalFrom(ctx context.Context) *lodestone.Principal {
	p, _ := ctx.Value(principalKey{}).(*lodestone.Principal)
	return p
}

// handle registers h on pattern behind the access check.
func (s *Server) handle(pattern string, access Access, h handlerFunc) {
	s.table = append(s.table, Route{Pattern: pattern, Access: access})
	s.mux.HandleFunc(pattern, s.wrap(s.guard(access, h)))
}

// handleRaw registers a handler that writes its own errors (ingest keeps ferrite's exact answers).
func (s *Server) handleRaw(pattern string, access Access, h http.HandlerFunc) {
	s.table = append(s.table, Route{Pattern: pattern, Access: access})
	s.mux.HandleFunc(pattern, s.wrap(s.guard(access, func(w http.ResponseWriter, r *http.Request) error {
		h(w, r)
		return nil
	})))
}

// guard enforces access before h runs.
func (s *Server) guard(access Access, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		switch access {
		case AccessPublic:
			return h(w, r)
		case AccessDevice:
			if !s.deps.IngestKey.Check(r) {
				w.Header().Set("WWW-Authenticate", "ApiKey")
				return lodestone.Errorf(lodestone.EUNAUTHORIZED, "missing or invalid X-API-Key")
			}
			return h(w, r)
		}
		var p *lodestone.Principal
		var err error
		if s.deps.Auth != nil {
			p, err = s.deps.Auth.Authenticate(r)
		}
		if err != nil || p == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="lodestone"`)
			if err != nil && lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED {
				return err
			}
			return lodestone.Errorf(lodestone.EUNAUTHORIZED, "authentication required")
		}
		if !p.Allows(access.Role()) {
			return lodestone.Errorf(lodestone.EFORBIDDEN, "%s access needs the %s role", r.URL.Path, access.Role())
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}
