package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/lru"
)

// DDIConfig sets up the hawkBit DDI API.
type DDIConfig struct {
	// Tenant is the one hawkBit tenant this server answers (compared without case, as hawkBit does); default
	// "DEFAULT", hawkBit's own default. A lodestone instance is one fleet: other tenants are 404.
	Tenant string
	// GatewayToken, when set, admits "Authorization: GatewayToken <token>" for every controller of the tenant.
	GatewayToken string
	// Anonymous admits controllers without credentials (hawkBit's anonymous mode); off by default.
	Anonymous bool
	// PollInterval is the config.polling.sleep controllers are told; default 5 minutes.
	PollInterval time.Duration
}

// DefaultDDITenant is hawkBit's default tenant.
const DefaultDDITenant = "DEFAULT"

// ddiState is what the server derives from DDIConfig once.
type ddiState struct {
	gateway    [sha256.Size]byte // SHA-256 of the gateway token: compared in constant time, the token not kept
	hasGateway bool

	mu   sync.Mutex
	seen *lru.Cache[string, time.Time] // when each controller's contact was last written (ddi.go: contact)
}

// contactEvery is how often a polling controller's contact is written: last_seen serves offline detection, which
// counts in minutes, and a write per poll would make the poll cost a transaction.
const contactEvery = 30 * time.Second

// recent reports whether the controller's contact was written less than contactEvery ago, and if not, notes now.
func (d *ddiState) recent(device string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.seen.Get(device); ok && now.Sub(t) < contactEvery && !now.Before(t) {
		return true
	}
	d.seen.Add(device, now)
	return false
}

func (s *Server) initDDI() {
	c := &s.cfg.DDI
	if c.Tenant == "" {
		c.Tenant = DefaultDDITenant
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Minute
	}
	s.ddi.seen = lru.New[string, time.Time](100_000)
	if c.GatewayToken != "" {
		s.ddi.gateway, s.ddi.hasGateway = sha256.Sum256([]byte(c.GatewayToken)), true
		c.GatewayToken = ""
	}
}

// isDDIPath reports whether path is under /{tenant}/controller/v1/. These routes live on a mux of their own: a
// leading wildcard segment would conflict with other routes' prefixes (a future "/ui/" or "/files/{path...}"
// would make ServeMux panic), so the server picks the mux by this test instead.
func isDDIPath(path string) bool {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
	return len(parts) == 4 && parts[0] != "" && parts[1] == "controller" && parts[2] == "v1"
}

// handleDDI registers a DDI route: in the route table as AccessController, behind the controller guard.
func (s *Server) handleDDI(pattern string, h handlerFunc) {
	s.table = append(s.table, Route{Pattern: pattern, Access: AccessController})
	s.ddiMux.HandleFunc(pattern, s.observe(pattern, s.wrap(s.guard(AccessController,
		func(w http.ResponseWriter, r *http.Request) error {
			if s.deps.OTA == nil || s.deps.OTA.DDI() == nil {
				return lodestone.Errorf(lodestone.EUNAVAILABLE, "firmware updates are not enabled on this server")
			}
			return h(w, r)
		}))))
}

// guardController admits a DDI controller as hawkBit does: "TargetToken <token>", where the token is the device's
// lodestone device key (lsd_...), so that a device is provisioned one way for every protocol, and it may act only
// as its own controller; "GatewayToken <token>" when one is configured, for any controller of the tenant; or no
// credentials when anonymous access is on. Refused credentials count against the address like any others.
func (s *Server) guardController(w http.ResponseWriter, r *http.Request, h handlerFunc, ip string,
	now time.Time) error {
	g := &authGate{s: s, w: w, ip: ip, now: now}
	authz := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(authz, " ")
	tok = strings.TrimSpace(tok)
	refuse := func(reason string) error {
		if authz != "" {
			if err := s.refuse(w, r, g, reason); err != nil {
				return err
			}
		}
		w.Header().Set("WWW-Authenticate", `TargetToken realm="lodestone"`)
		return lodestone.Errorf(lodestone.EUNAUTHORIZED, "Authentication required: %s", reason)
	}
	var p *lodestone.Principal
	switch {
	case strings.EqualFold(scheme, "TargetToken") && tok != "":
		if !strings.HasPrefix(tok, DeviceKeyPrefix) {
			return refuse("a target token is the device's lodestone device key (lsd_...)")
		}
		// The device key is checked as on every device route: by the authenticator, sent as X-API-Key.
		kr := r.Clone(r.Context())
		kr.Header = http.Header{"X-Api-Key": {tok}}
		dp, err := s.authenticate(kr)
		if err != nil && lodestone.ErrorCode(err) != lodestone.EUNAUTHORIZED {
			return err
		}
		if err != nil || dp == nil || dp.DeviceID == "" {
			return refuse("invalid target token")
		}
		p = dp
	case strings.EqualFold(scheme, "GatewayToken") && tok != "":
		sum := sha256.Sum256([]byte(tok))
		if !s.ddi.hasGateway || subtle.ConstantTimeCompare(sum[:], s.ddi.gateway[:]) != 1 {
			return refuse("invalid gateway token")
		}
		p = &lodestone.Principal{Name: "ddi-gateway"}
	case authz == "" && s.cfg.DDI.Anonymous:
		p = &lodestone.Principal{Name: "ddi-anonymous"}
	default:
		return refuse("send Authorization: TargetToken <device key>")
	}
	if !strings.EqualFold(r.PathValue("tenant"), s.cfg.DDI.Tenant) {
		return lodestone.Errorf(lodestone.ENOTFOUND, "unknown tenant %q: this server answers tenant %q",
			r.PathValue("tenant"), s.cfg.DDI.Tenant)
	}
	controller := r.PathValue("controllerId")
	if !validDeviceHeader(controller) {
		return lodestone.Errorf(lodestone.EINVALID, "controllerId must be 1-128 visible ASCII characters")
	}
	if p.DeviceID != "" && p.DeviceID != controller {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "this target token belongs to controller %q, not %q",
			p.DeviceID, controller)
	}
	if err := s.ingestDevices.allow(w, controller, now); err != nil {
		return err
	}
	return h(w, r.WithContext(lodestone.NewContextWithPrincipal(r.Context(), p)))
}
