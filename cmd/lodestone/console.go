package main

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/console"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// newConsole wires the web console to the store's services. api returns the HTTP API once it is built: the
// console checks passwords through it, with the API's failure limits. updates are the OTA services the API uses.
func newConsole(cfg Config, st lodestone.Store, bus lodestone.EventBus,
	log *slog.Logger, api func() *httpapi.Server, updates console.UpdatesDeps) (*console.Console, error) {
	cc := console.Config{Logger: log, Devices: st, Registry: st, Groups: st, Telemetry: st, Crashes: st,
		Events: bus, IdleTimeout: cfg.ConsoleIdle, MaxAge: cfg.ConsoleMaxAge}
	cc.Series, _ = st.(lodestone.SeriesReader)
	cc.Counts, _ = st.(lodestone.DeviceCounter)
	cc.Membership, _ = st.(lodestone.GroupMembership)
	cc.Targets = st
	cc.Credentials, _ = st.(lodestone.CredentialStore)
	cc.Sessions, _ = st.(lodestone.SessionStore)
	cc.Updates = updates
	issuer, clientID := cfg.OIDCIssuer, cfg.OIDCClientID
	if cfg.KeycloakURL != "" {
		issuer, clientID = httpapi.KeycloakIssuer(cfg.KeycloakURL, cfg.KeycloakRealm), cfg.KeycloakClientID
	}
	if issuer != "" {
		claim := cfg.OIDCRoleClaim
		if claim == "" && cfg.KeycloakURL != "" {
			claim = "realm_access.roles"
		}
		cc.OIDC = &console.OIDCConfig{Issuer: issuer, ClientID: clientID, ClientSecret: cfg.OIDCClientSecret,
			RoleClaim: claim, RedirectURL: cfg.OIDCRedirectURL}
	} else {
		// With a provider, people sign in there (as the API takes only its tokens then); without, by password.
		cc.SignIn = func(w http.ResponseWriter, r *http.Request, user, pass string) (*lodestone.Principal, error) {
			return api().SignIn(w, r, user, pass)
		}
	}
	return console.New(cc)
}

// consoleURL is the console's address on the listener, for the startup log ("localhost" for a wildcard).
func consoleURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "/ui/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/ui/"
}
