package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

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
	AccessController                // a hawkBit DDI controller: TargetToken (its device key), GatewayToken, or anonymous when enabled
	AccessSession                   // the web console: its own session cookie, and a role check on each page
)

func (a Access) String() string {
	return [...]string{"public", "device", "viewer", "provisioner", "admin", "controller", "session"}[a]
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

// PrincipalFrom returns the authenticated caller of a request, or nil.
func PrincipalFrom(ctx context.Context) *lodestone.Principal {
	return lodestone.PrincipalFromContext(ctx)
}

// handle registers h on pattern behind the access check.
func (s *Server) handle(pattern string, access Access, h handlerFunc) {
	s.table = append(s.table, Route{Pattern: pattern, Access: access})
	s.mux.HandleFunc(pattern, s.observe(pattern, s.wrap(s.guard(access, h))))
}

// handleRaw registers a handler that writes its own errors (ingest keeps ferrite's exact answers); reject writes,
// in the same shape, what the shared request checks refuse.
func (s *Server) handleRaw(pattern string, access Access, h http.HandlerFunc, reject func(http.ResponseWriter, error)) {
	s.table = append(s.table, Route{Pattern: pattern, Access: access})
	s.mux.HandleFunc(pattern, s.observe(pattern, s.wrapAs(s.guard(access, func(w http.ResponseWriter, r *http.Request) error {
		h(w, r)
		return nil
	}), reject)))
}

// EventsAccess is what GET /events/stream demands: credentials unless PUBLIC_EVENTS opens it (ferrite leaves it
// public; its events name devices and carry their data).
func (c Config) EventsAccess() Access {
	if c.PublicEvents {
		return AccessPublic
	}
	return AccessViewer
}

// MetricsAccess is what GET /metrics/prometheus demands: credentials unless PUBLIC_METRICS opens it for a
// scraper without them.
func (c Config) MetricsAccess() Access {
	if c.PublicMetrics {
		return AccessPublic
	}
	return AccessViewer
}

// AuthFailures counts refused credentials since start (ferrite_auth_failures_total).
func (s *Server) AuthFailures() uint64 { return s.authFailed.Load() }

func (s *Server) initLimits() {
	l := s.cfg.Limits
	s.ingestIPs = newBuckets(l.RPS, l.Burst)
	s.ingestDevices = newBuckets(l.RPS, l.Burst)
	if l.AuthFailures == 0 {
		l.AuthFailures = defaultAuthFailures
	}
	if l.AuthFailureBurst == 0 {
		l.AuthFailureBurst = defaultAuthFailureBurst
	}
	if l.AuthFailures > 0 {
		s.authFailures = newBuckets(l.AuthFailures, l.AuthFailureBurst)
		s.authState.userFailures = newBuckets(l.AuthFailures, min(l.AuthFailureBurst, maxUserFailureBurst))
	}
	s.authState.failLog.Every = failLogEvery
}

// challenge is the WWW-Authenticate value for a refused user request.
func (s *Server) challenge() string {
	if c, ok := s.deps.Auth.(interface{ Challenge() string }); ok {
		return c.Challenge()
	}
	return `Basic realm="lodestone"`
}

func (s *Server) authenticate(r *http.Request) (*lodestone.Principal, error) {
	if s.deps.Auth == nil {
		if r.Header.Get("Authorization") != "" {
			return nil, errBadCredentials
		}
		return nil, nil
	}
	return s.deps.Auth.Authenticate(r)
}

// refuse counts a failed credential check, logs it and, unless the authenticator already reserved the failure
// before an expensive check (gate), takes it from the address's bucket: past the limit the answer is a 429.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, g *authGate, reason string) error {
	s.authFailed.Add(1)
	s.logFailure(r, g.ip, reason, g.now)
	if g.handled {
		return nil
	}
	return s.authFailures.take(w, g.ip, g.now)
}

// guard enforces access before h runs: rate limits first (cheap), then credentials, then the role. Failed
// credentials are limited per address, and passwords also per (address, user); a valid credential is never
// refused for someone else's failures, except a password check that would cost a hash from an address that
// ran out of failures.
func (s *Server) guard(access Access, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		now := time.Now()
		ip := ClientIP(r.Context())
		if ip == "" {
			ip = s.clientIP(r)
		}
		if access == AccessDevice || access == AccessController || strings.HasPrefix(r.URL.Path, "/auth/") {
			if err := s.ingestIPs.allow(w, ip, now); err != nil {
				return err
			}
		}
		switch access {
		case AccessPublic, AccessSession:
			return h(w, r)
		case AccessDevice:
			return s.guardDevice(w, r, h, ip, now)
		case AccessController:
			return s.guardController(w, r, h, ip, now)
		}
		if p := lodestone.PrincipalFromContext(r.Context()); p != nil && p.DeviceID == "" {
			// Dispatched in-process by an entry point that authenticated its caller (an MCP tool call): no
			// request from the network carries a principal before this guard sets one. The role still counts.
			return s.authorize(w, r, access, p, h)
		}
		g := &authGate{s: s, w: w, ip: ip, now: now}
		if s.expensiveUnlessGated(r) {
			// A JWT whose key is unknown makes the verifier fetch the provider's keys: refuse a blocked address first.
			if err := s.authFailures.blocked(w, ip, now); err != nil {
				return err
			}
		}
		p, err := s.authenticate(r.WithContext(withGate(r.Context(), g)))
		if err != nil && lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED {
			return err // rate limited or busy, or the store or the OpenID provider failed: not the caller's fault
		}
		if err != nil || p == nil {
			w.Header().Set("WWW-Authenticate", s.challenge())
			if err != nil {
				if lerr := s.refuse(w, r, g, lodestone.ErrorMessage(err)); lerr != nil {
					return lerr
				}
				return lodestone.Errorf(lodestone.EUNAUTHORIZED, "Authentication required: %s",
					lodestone.ErrorMessage(err))
			}
			return lodestone.Errorf(lodestone.EUNAUTHORIZED, "Authentication required")
		}
		return s.authorize(w, r, access, p, h)
	}
}

// authorize runs h for p when p's role satisfies access.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, access Access, p *lodestone.Principal,
	h handlerFunc) error {
	if !p.Allows(access.Role()) {
		switch {
		case p.DeviceID != "":
			return lodestone.Errorf(lodestone.EFORBIDDEN,
				"Insufficient permissions: a device key only posts that device's data")
		case access == AccessAdmin:
			return lodestone.Errorf(lodestone.EFORBIDDEN, "Insufficient permissions: admin role required")
		default:
			return lodestone.Errorf(lodestone.EFORBIDDEN,
				"Insufficient permissions: provisioner or admin role required")
		}
	}
	return h(w, r.WithContext(lodestone.NewContextWithPrincipal(r.Context(), p)))
}

// expensiveUnlessGated reports whether checking r's credentials may cost real work that the authenticator does
// not put behind an authGate: a bearer JWT (OIDC), or any credential of another Authenticator.
func (s *Server) expensiveUnlessGated(r *http.Request) bool {
	if _, ok := s.deps.Auth.(*Authn); !ok {
		return r.Header.Get("Authorization") != ""
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && !strings.HasPrefix(tok, TokenPrefix) && !strings.HasPrefix(tok, DeviceKeyPrefix)
}

// guardDevice admits a device: with its own key (X-API-Key: lsd_... or Authorization: Bearer lsd_...), or with
// the fleet's INGEST_API_KEY when one is set, or anyone when none is (ferrite's default). Keys are cheap to check
// (a hash lookup), so they are checked first: a valid key passes whatever others from its address did.
func (s *Server) guardDevice(w http.ResponseWriter, r *http.Request, h handlerFunc, ip string, now time.Time) error {
	key := r.Header.Get("X-API-Key")
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g := &authGate{s: s, w: w, ip: ip, now: now}
	if !strings.HasPrefix(key, DeviceKeyPrefix) && !strings.HasPrefix(bearer, DeviceKeyPrefix) {
		if !s.deps.IngestKey.Check(r) {
			if key != "" {
				if err := s.refuse(w, r, g, "invalid ingest key"); err != nil {
					return err
				}
			}
			w.Header().Set("WWW-Authenticate", "ApiKey")
			return lodestone.Errorf(lodestone.EUNAUTHORIZED, "Missing or invalid X-API-Key")
		}
		return h(w, r)
	}
	p, err := s.authenticate(r)
	if err != nil && lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED {
		return err
	}
	if err != nil || p == nil || p.DeviceID == "" {
		reason := "not a device key"
		if err != nil {
			reason = lodestone.ErrorMessage(err)
		}
		if err := s.refuse(w, r, g, reason); err != nil {
			return err
		}
		w.Header().Set("WWW-Authenticate", "ApiKey")
		return lodestone.Errorf(lodestone.EUNAUTHORIZED, "Missing or invalid X-API-Key")
	}
	if err := s.ingestDevices.allow(w, p.DeviceID, now); err != nil {
		return err
	}
	// The key names its device: chunks before any DeviceInfo belong to it, and a header naming another device
	// is refused rather than believed.
	if hd := r.Header.Get("X-Device-Id"); hd != "" && hd != p.DeviceID {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "this device key belongs to device %q, not %q", p.DeviceID, hd)
	}
	r.Header.Set("X-Device-Id", p.DeviceID)
	return h(w, r.WithContext(lodestone.NewContextWithPrincipal(r.Context(), p)))
}
