package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// routesAuth registers who-am-I, user management, API tokens and device keys.
func (s *Server) routesAuth() {
	s.handle("GET /auth/me", AccessViewer, s.authMe)

	s.handle("GET /admin/users", AccessAdmin, s.listUsers)
	s.handle("POST /admin/users", AccessAdmin, s.createUser)
	s.handle("PUT /admin/users/{name}", AccessAdmin, s.updateUser)
	s.handle("DELETE /admin/users/{name}", AccessAdmin, s.deleteUser)

	s.handle("GET /admin/tokens", AccessAdmin, s.listTokens)
	s.handle("POST /admin/tokens", AccessAdmin, s.createToken)
	s.handle("DELETE /admin/tokens/{id}", AccessAdmin, s.revokeToken)

	s.handle("GET /devices/{id}/keys", AccessProvisioner, s.listDeviceKeys)
	s.handle("POST /devices/{id}/keys", AccessProvisioner, s.createDeviceKey)
	s.handle("DELETE /devices/{id}/keys/{key}", AccessProvisioner, s.revokeDeviceKey)
}

// authModeBody is ferrite's /auth/mode answer: {"mode":"basic"}, or the issuer and client for an OIDC login.
func (s *Server) authModeBody() map[string]string {
	if a, ok := s.deps.Auth.(*Authn); ok && a.cfg.OIDC != nil {
		return map[string]string{"mode": a.Mode(), "authority": a.cfg.OIDC.Issuer(),
			"client_id": a.cfg.OIDC.ClientID()}
	}
	return map[string]string{"mode": "basic"}
}

func (s *Server) authMe(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"name": p.Name, "role": p.Role.String(),
		"mode": s.authModeBody()["mode"]})
	return nil
}

func (s *Server) credentials() (lodestone.CredentialStore, error) {
	if s.deps.Credentials == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no users or tokens")
	}
	return s.deps.Credentials, nil
}

// forget makes changes to users and tokens take effect at once on this replica.
func (s *Server) forget() {
	if f, ok := s.deps.Auth.(interface{ Forget() }); ok {
		f.Forget()
	}
}

type userJSON struct {
	Name       string  `json:"name"`
	Role       string  `json:"role"`
	Source     string  `json:"source"` // "env": from BASIC_AUTH_*, read-only; "api": managed here
	CreatedAt  *string `json:"created_at"`
	UpdatedAt  *string `json:"updated_at"`
	Disabled   bool    `json:"disabled"` // refused at sign-in; kept with their history
	DisabledAt *string `json:"disabled_at"`
}

func newUserJSON(u *lodestone.User) userJSON {
	c, up := ts(u.CreatedAt), ts(u.UpdatedAt)
	out := userJSON{Name: u.Name, Role: u.Role.String(), Source: "api", CreatedAt: &c, UpdatedAt: &up,
		Disabled: u.Disabled()}
	if u.DisabledAt != nil {
		d := ts(*u.DisabledAt)
		out.DisabledAt = &d
	}
	return out
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	out := []userJSON{}
	if a, ok := s.deps.Auth.(*Authn); ok {
		for _, u := range a.ConfiguredUsers() {
			out = append(out, userJSON{Name: u.Name, Role: u.Role.String(), Source: "env"})
		}
	}
	if s.deps.Credentials != nil {
		users, err := s.deps.Credentials.FindUsers(r.Context())
		if err != nil {
			return err
		}
		for _, u := range users {
			out = append(out, newUserJSON(u))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// minPassword is the shortest password a managed user may have.
const minPassword = 8

type userRequest struct {
	Name     string  `json:"name"`
	Password *string `json:"password"`
	Role     *string `json:"role"`
	Disabled *bool   `json:"disabled"` // true disables the user (sign-in refused, sessions ended), false enables
	create   bool
}

func (u *userRequest) Validate() error {
	fe := FieldErrors{}
	if u.create {
		if !validName(u.Name) {
			fe.Add("name", "required: 1-64 letters, digits, '.', '_', '-' or '@'")
		}
		if u.Password == nil {
			fe.Add("password", "required")
		}
		if u.Role == nil {
			fe.Add("role", "required: viewer, provisioner or admin")
		}
	}
	if u.Password != nil && len(*u.Password) < minPassword {
		fe.Add("password", "must be at least 8 characters")
	}
	if u.Password != nil && len(*u.Password) > 72 {
		fe.Add("password", "must be at most 72 bytes (bcrypt's limit)")
	}
	if u.Role != nil {
		if _, ok := lodestone.ParseRole(*u.Role); !ok {
			fe.Add("role", "must be viewer, provisioner or admin")
		}
	}
	return fe.Err()
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' ||
			c == '-' || c == '@') {
			return false
		}
	}
	return true
}

func (s *Server) authn() (*Authn, error) {
	a, ok := s.deps.Auth.(*Authn)
	if !ok {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server manages no users")
	}
	return a, nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	a, err := s.authn()
	if err != nil {
		return err
	}
	req := userRequest{create: true}
	if err := DecodeJSON(w, r, &req, 0); err != nil {
		return err
	}
	if a.IsConfigured(req.Name) {
		return lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment", req.Name)
	}
	hash, err := a.HashPassword(*req.Password)
	if err != nil {
		return err
	}
	role, _ := lodestone.ParseRole(*req.Role)
	now := time.Now().UTC()
	u := &lodestone.User{Name: req.Name, Role: role, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if req.Disabled != nil && *req.Disabled {
		u.DisabledAt = &now
	}
	if err := store.CreateUser(r.Context(), u); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": newUserJSON(u)})
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	a, err := s.authn()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var req userRequest
	if err := DecodeJSON(w, r, &req, 0); err != nil {
		return err
	}
	if a.IsConfigured(name) {
		return lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment; change it there", name)
	}
	u, err := store.FindUser(r.Context(), name)
	if err != nil {
		return err
	}
	if req.Password != nil {
		if u.PasswordHash, err = a.HashPassword(*req.Password); err != nil {
			return err
		}
	}
	if req.Role != nil {
		u.Role, _ = lodestone.ParseRole(*req.Role)
	}
	u.UpdatedAt = time.Now().UTC()
	if req.Disabled != nil {
		if *req.Disabled {
			if err := CheckNotSelf(r.Context(), name, "disable"); err != nil {
				return err
			}
		}
		switch {
		case !*req.Disabled:
			u.DisabledAt = nil
		case u.DisabledAt == nil:
			u.DisabledAt = &u.UpdatedAt
		}
	}
	if err := store.UpdateUser(r.Context(), u); err != nil {
		return err
	}
	s.forget()
	writeJSON(w, http.StatusOK, map[string]any{"user": newUserJSON(u)})
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if a, ok := s.deps.Auth.(*Authn); ok && a.IsConfigured(name) {
		return lodestone.Errorf(lodestone.ECONFLICT, "user %q is configured in the environment; remove it there", name)
	}
	if err := CheckNotSelf(r.Context(), name, "delete"); err != nil {
		return err
	}
	if err := store.DeleteUser(r.Context(), name); err != nil {
		return err
	}
	s.forget()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type tokenJSON struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	Role       string  `json:"role,omitempty"`
	DeviceID   string  `json:"device_id,omitempty"`
	Hint       string  `json:"hint"`
	CreatedBy  string  `json:"created_by"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	RevokedAt  *string `json:"revoked_at"`
}

func newTokenJSON(t *lodestone.Token) tokenJSON {
	out := tokenJSON{ID: t.ID, Name: t.Name, DeviceID: t.DeviceID, Hint: t.Hint, CreatedBy: t.CreatedBy,
		CreatedAt: ts(t.CreatedAt)}
	if t.Kind == lodestone.TokenAPI {
		out.Role = t.Role.String()
	}
	if t.LastUsedAt != nil {
		v := ts(*t.LastUsedAt)
		out.LastUsedAt = &v
	}
	if t.RevokedAt != nil {
		v := ts(*t.RevokedAt)
		out.RevokedAt = &v
	}
	return out
}

func (s *Server) findTokens(w http.ResponseWriter, r *http.Request, key string, f lodestone.TokenFilter) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	found, err := store.FindTokens(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]tokenJSON, len(found))
	for i, t := range found {
		out[i] = newTokenJSON(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{key: out})
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	return s.findTokens(w, r, "tokens", lodestone.TokenFilter{Kind: lodestone.TokenAPI})
}

type tokenRequest struct {
	Name string  `json:"name"`
	Role *string `json:"role"`
	role bool    // the role is required (API tokens)
}

func (t *tokenRequest) Validate() error {
	fe := FieldErrors{}
	if t.Name != "" && !validName(t.Name) || t.role && t.Name == "" {
		fe.Add("name", "required: 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if t.role {
		if t.Role == nil {
			fe.Add("role", "required: viewer, provisioner or admin")
		} else if _, ok := lodestone.ParseRole(*t.Role); !ok {
			fe.Add("role", "must be viewer, provisioner or admin")
		}
	}
	return fe.Err()
}

// issue stores a new secret and answers it once; only its hash is kept.
func (s *Server) issue(w http.ResponseWriter, r *http.Request, key, prefix string, t *lodestone.Token) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	secret, hint := NewSecret(prefix)
	t.Hint, t.Hash, t.CreatedAt = hint, HashToken(secret), time.Now().UTC()
	if p := PrincipalFrom(r.Context()); p != nil {
		t.CreatedBy = p.Name
	}
	if err := store.CreateToken(r.Context(), t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{key: newTokenJSON(t), "secret": secret})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	req := tokenRequest{role: true}
	if err := DecodeJSON(w, r, &req, 0); err != nil {
		return err
	}
	role, _ := lodestone.ParseRole(*req.Role)
	return s.issue(w, r, "token", TokenPrefix, &lodestone.Token{Kind: lodestone.TokenAPI, Name: req.Name, Role: role})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, param string, f lodestone.TokenFilter) error {
	store, err := s.credentials()
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue(param), 10, 64)
	if err != nil || id <= 0 {
		return lodestone.Errorf(lodestone.EINVALID, "%s must be a positive integer id", param)
	}
	if err := store.RevokeToken(r.Context(), id, f, time.Now().UTC()); err != nil {
		return err
	}
	s.forget()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	return s.revoke(w, r, "id", lodestone.TokenFilter{Kind: lodestone.TokenAPI})
}

func (s *Server) deviceKeyFilter(r *http.Request) (lodestone.TokenFilter, error) {
	id := r.PathValue("id")
	if !validDeviceHeader(id) {
		return lodestone.TokenFilter{}, lodestone.Errorf(lodestone.EINVALID,
			"device id must be 1-128 visible ASCII characters")
	}
	return lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: id}, nil
}

func (s *Server) listDeviceKeys(w http.ResponseWriter, r *http.Request) error {
	f, err := s.deviceKeyFilter(r)
	if err != nil {
		return err
	}
	return s.findTokens(w, r, "keys", f)
}

// createDeviceKey issues a key for a device by its device_id. The device need not have reported yet, so a key
// can be flashed at the factory before first contact.
func (s *Server) createDeviceKey(w http.ResponseWriter, r *http.Request) error {
	f, err := s.deviceKeyFilter(r)
	if err != nil {
		return err
	}
	var req tokenRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(w, r, &req, 0); err != nil {
			return err
		}
	}
	if req.Name == "" {
		req.Name = "default"
	}
	return s.issue(w, r, "key", DeviceKeyPrefix, &lodestone.Token{Kind: lodestone.TokenDevice, Name: req.Name,
		DeviceID: f.DeviceID})
}

func (s *Server) revokeDeviceKey(w http.ResponseWriter, r *http.Request) error {
	f, err := s.deviceKeyFilter(r)
	if err != nil {
		return err
	}
	return s.revoke(w, r, "key", f)
}

// CheckNotSelf refuses to let a signed-in user disable or delete their own account, which would lock them out
// mid-task (another admin can).
func CheckNotSelf(ctx context.Context, name, what string) error {
	if p := PrincipalFrom(ctx); p != nil && p.ActorKind() == lodestone.ActorUser && p.Name == name {
		return lodestone.Errorf(lodestone.ECONFLICT, "you cannot %s your own account; another admin can", what)
	}
	return nil
}

// ValidName reports whether s is a valid user, token or project name: 1-64 letters, digits, '.', '_', '-' or '@'.
func ValidName(s string) bool { return validName(s) }

// MinPassword and MaxPassword bound a managed user's password (bcrypt reads at most 72 bytes).
const (
	MinPassword = minPassword
	MaxPassword = 72
)
