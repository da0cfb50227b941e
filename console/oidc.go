package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// OIDCConfig is the OpenID provider users sign in with interactively (authorization code with PKCE).
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string // empty for a public client (PKCE alone)
	RoleClaim    string // dotted path of the roles claim, as for bearer tokens
	// RedirectURL is the callback the provider sends the browser to; empty derives it from the request
	// (scheme and Host + /ui/oidc/callback), which must match one registered with the provider.
	RedirectURL string
	Client      *http.Client // for discovery and the token exchange; default: 10 s timeout
}

// oidcClient discovers the provider lazily, so the server starts while the provider is down.
type oidcClient struct {
	cfg      OIDCConfig
	mu       sync.Mutex
	provider *oidc.Provider
}

func newOIDCClient(cfg OIDCConfig) *oidcClient {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "roles"
	}
	return &oidcClient{cfg: cfg}
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.Client)
}

func (o *oidcClient) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "the sign-in provider %s does not answer: %v",
			o.cfg.Issuer, err)
	}
	o.provider = p
	return p, nil
}

func (o *oidcClient) oauth(p *oidc.Provider, r *http.Request) *oauth2.Config {
	redirect := o.cfg.RedirectURL
	if redirect == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		redirect = scheme + "://" + r.Host + "/ui/oidc/callback"
	}
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID}}
}

// oidcState is what the browser keeps (in an HttpOnly cookie) between the redirect to the provider and back.
type oidcState struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	Next     string `json:"x"`
}

const oidcCookie = "lodestone_oidc"

func (c *Console) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		c.fail(w, r, nil, lodestone.Errorf(lodestone.ENOTFOUND, "no OpenID provider is configured"))
		return
	}
	p, err := c.oidc.discover(r.Context())
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	st := oidcState{State: newSecret(), Verifier: oauth2.GenerateVerifier(), Nonce: newSecret(),
		Next: safeNext(r.URL.Query().Get("next"))}
	raw, _ := json.Marshal(st)
	c.setCookie(w, r, oidcCookie, base64.RawURLEncoding.EncodeToString(raw), 10*time.Minute)
	http.Redirect(w, r, c.oidc.oauth(p, r).AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier),
		oidc.Nonce(st.Nonce)), http.StatusSeeOther)
}

// oidcCallback exchanges the code (with the PKCE verifier), verifies the ID token and its nonce, and starts a
// session with the role the token's claims give.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string) {
		c.renderLogin(w, r, http.StatusUnauthorized, "", &flash{Msg: msg, Err: true})
	}
	if c.oidc == nil {
		c.fail(w, r, nil, lodestone.Errorf(lodestone.ENOTFOUND, "no OpenID provider is configured"))
		return
	}
	var st oidcState
	ck, err := r.Cookie(oidcCookie)
	if err == nil {
		raw, derr := base64.RawURLEncoding.DecodeString(ck.Value)
		err = derr
		if err == nil {
			err = json.Unmarshal(raw, &st)
		}
	}
	c.setCookie(w, r, oidcCookie, "", -1)
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		bad("The sign-in provider refused: " + e)
		return
	}
	if err != nil || st.State == "" || !equalTokens(q.Get("state"), st.State) {
		bad("The sign-in took too long or came from elsewhere; please try again.")
		return
	}
	p, err := c.oidc.discover(r.Context())
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	ctx := c.oidc.ctx(r.Context())
	tok, err := c.oidc.oauth(p, r).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		c.log.Warn("console OIDC code exchange failed", "err", err)
		bad("The sign-in provider did not accept the sign-in; please try again.")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: c.oidc.cfg.ClientID}).Verify(ctx, rawID)
	if err != nil || !equalTokens(idt.Nonce, st.Nonce) {
		c.log.Warn("console OIDC ID token refused", "err", err)
		bad("The sign-in provider's answer could not be verified.")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		bad("The sign-in provider's answer could not be read.")
		return
	}
	name, _ := claims["preferred_username"].(string)
	if name == "" {
		name = idt.Subject
	}
	user := &lodestone.Principal{Name: name, Role: httpapi.RoleFromClaims(claims, c.oidc.cfg.RoleClaim)}
	if err := c.startSession(w, r, user, "oidc"); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.Redirect(w, r, safeNext(st.Next), http.StatusSeeOther)
}
