package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/lodestone-fleet/lodestone"
)

// OIDCConfig names an OpenID provider whose JWTs sign users in.
type OIDCConfig struct {
	Issuer   string // exact issuer URL; Keycloak's is <KEYCLOAK_URL>/realms/<KEYCLOAK_REALM>
	ClientID string // a token must name it in aud, azp or client_id
	// RoleClaim is a dotted path to the claim holding roles (a string list or a comma/space separated string).
	// Values admin, provisioner and viewer count, also with a "ferrite-" or "lodestone-" prefix; a user with none
	// of them is a viewer, as in ferrite.
	RoleClaim string
	Keycloak  bool         // configured through ferrite's KEYCLOAK_* variables; /auth/mode says "keycloak"
	Client    *http.Client // for discovery and JWKS; default has a 10 s timeout
}

// KeycloakIssuer is the issuer URL ferrite derives from KEYCLOAK_URL and KEYCLOAK_REALM.
func KeycloakIssuer(url, realm string) string {
	return strings.TrimRight(url, "/") + "/realms/" + realm
}

// OIDC verifies bearer JWTs against the issuer's JWKS (go-oidc: pinned algorithms from discovery, iss and exp
// checked, keys fetched again when an unknown kid appears). Discovery is lazy and retried, so the server starts
// even while the provider is down.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	lastTry  time.Time
	lastErr  error
}

// discoveryRetry is how long a failed discovery is remembered before the next request tries again.
const discoveryRetry = 5 * time.Second

// NewOIDC returns a verifier for cfg.
func NewOIDC(cfg OIDCConfig) *OIDC {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "roles"
		if cfg.Keycloak {
			cfg.RoleClaim = "realm_access.roles"
		}
	}
	return &OIDC{cfg: cfg}
}

// Issuer is the configured issuer URL (ferrite's /auth/mode "authority").
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// ClientID is the configured client id.
func (o *OIDC) ClientID() string { return o.cfg.ClientID }

func (o *OIDC) mode() string {
	if o.cfg.Keycloak {
		return "keycloak"
	}
	return "oidc"
}

func (o *OIDC) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	if time.Since(o.lastTry) < discoveryRetry {
		return nil, o.lastErr
	}
	o.lastTry = time.Now()
	// The key set keeps the client from this context for later fetches; discovery itself is bounded by the
	// client's timeout and the request's context.
	pctx := oidc.ClientContext(context.WithoutCancel(ctx), o.cfg.Client)
	p, err := oidc.NewProvider(pctx, o.cfg.Issuer)
	if err != nil {
		o.lastErr = lodestone.Errorf(lodestone.EUNAVAILABLE, "the OpenID provider cannot be reached")
		return nil, fmt.Errorf("%w: discover %s: %v", o.lastErr, o.cfg.Issuer, err)
	}
	// Audience is checked below: access tokens often carry the client in azp or client_id, not aud.
	o.verifier = p.Verifier(&oidc.Config{SkipClientIDCheck: true})
	return o.verifier, nil
}

// Verify checks a JWT and maps its claims to a principal.
func (o *OIDC) Verify(ctx context.Context, raw string) (*lodestone.Principal, error) {
	v, err := o.getVerifier(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "invalid bearer token")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "invalid bearer token")
	}
	if o.cfg.ClientID != "" && !slices.Contains(tok.Audience, o.cfg.ClientID) &&
		claims["azp"] != o.cfg.ClientID && claims["client_id"] != o.cfg.ClientID {
		return nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "bearer token is not for this client")
	}
	name := tok.Subject
	for _, k := range []string{"preferred_username", "name", "email"} {
		if s, ok := claims[k].(string); ok && s != "" {
			name = s
			break
		}
	}
	return &lodestone.Principal{Name: name, Role: RoleFromClaims(claims, o.cfg.RoleClaim)}, nil
}

// RoleFromClaims finds the highest role named in the claim at the dotted path; viewer when none is named.
func RoleFromClaims(claims map[string]any, path string) lodestone.Role {
	var v any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			v = nil
			break
		}
		v = m[part]
	}
	var names []string
	switch x := v.(type) {
	case string:
		names = strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' })
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	best := lodestone.RoleViewer
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		n = strings.TrimPrefix(strings.TrimPrefix(n, "ferrite-"), "lodestone-")
		if r, ok := lodestone.ParseRole(n); ok && r > best {
			best = r
		}
	}
	return best
}
