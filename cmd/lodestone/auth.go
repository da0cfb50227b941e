package main

import (
	"log/slog"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// newAuthn builds the authenticator: Basic users from the environment and the store, API tokens, device keys,
// and OIDC when an issuer is configured (ferrite's three KEYCLOAK_* variables, or OIDC_ISSUER).
func newAuthn(cfg Config, admin *httpapi.BasicAuth, store lodestone.Store, log *slog.Logger) (*httpapi.Authn, error) {
	creds, _ := store.(lodestone.CredentialStore)
	var oidc *httpapi.OIDC
	switch {
	case cfg.OIDCIssuer != "":
		oidc = httpapi.NewOIDC(httpapi.OIDCConfig{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID,
			RoleClaim: cfg.OIDCRoleClaim})
	case cfg.KeycloakURL != "" && cfg.KeycloakRealm != "" && cfg.KeycloakClientID != "":
		oidc = httpapi.NewOIDC(httpapi.OIDCConfig{Issuer: httpapi.KeycloakIssuer(cfg.KeycloakURL, cfg.KeycloakRealm),
			ClientID: cfg.KeycloakClientID, RoleClaim: cfg.OIDCRoleClaim, Keycloak: true})
	}
	if oidc != nil {
		log.Info("users sign in with OpenID Connect bearer tokens; Basic sign-in is off", "issuer", oidc.Issuer())
	}
	return httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: cfg.BasicAuthUsers, Store: creds, OIDC: oidc,
		Logger: log})
}
