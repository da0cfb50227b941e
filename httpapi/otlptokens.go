package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// OTLPTokenPrefix starts the secrets of detritus tokens created here; the OTLP receiver recognises it and finds
// the token by the secret's SHA-256 (package otlp, APITokenPrefix).
const OTLPTokenPrefix = "ldt_"

// routesOTLPTokens manages detritus bearer tokens for the OTLP receiver, beside those of its token file.
func (s *Server) routesOTLPTokens() {
	s.handle("GET /admin/otlp-tokens", AccessAdmin, s.listOTLPTokens)
	s.handle("POST /admin/otlp-tokens", AccessAdmin, s.createOTLPToken)
	s.handle("DELETE /admin/otlp-tokens/{id}", AccessAdmin, s.revokeOTLPToken)
}

type otlpTokenJSON struct {
	ID           int64   `json:"id"`
	Name         string  `json:"name"`
	TokenID      string  `json:"token_id"` // as the receiver names it in rate limits and crash uploads
	Project      string  `json:"project"`
	SourcePrefix string  `json:"source_prefix"`
	Hint         string  `json:"hint"`
	CreatedBy    string  `json:"created_by"`
	CreatedAt    string  `json:"created_at"`
	RevokedAt    *string `json:"revoked_at"`
}

func newOTLPTokenJSON(t *lodestone.OTLPToken) otlpTokenJSON {
	out := otlpTokenJSON{ID: t.ID, Name: t.Name, TokenID: "api/" + t.Name, Project: t.Project,
		SourcePrefix: t.SourcePrefix, Hint: t.Hint, CreatedBy: t.CreatedBy, CreatedAt: ts(t.CreatedAt)}
	if t.RevokedAt != nil {
		v := ts(*t.RevokedAt)
		out.RevokedAt = &v
	}
	return out
}

type otlpTokenRequest struct {
	Name         string  `json:"name"`
	Project      string  `json:"project"`
	SourcePrefix *string `json:"source_prefix"`
}

func (t *otlpTokenRequest) Validate() error {
	fe := FieldErrors{}
	if !validName(t.Name) {
		fe.Add("name", "required: 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if !validName(t.Project) {
		fe.Add("project", "required: 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if t.SourcePrefix != nil && (len(*t.SourcePrefix) > 256 || !strings.HasPrefix(*t.SourcePrefix, t.Project+"/")) {
		fe.Add("source_prefix", "must start with \"<project>/\" and be at most 256 characters")
	}
	return fe.Err()
}

func (s *Server) otlpTokens() (lodestone.OTLPTokenStore, error) {
	if s.deps.OTLPTokens == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not keep OTLP tokens")
	}
	return s.deps.OTLPTokens, nil
}

func (s *Server) listOTLPTokens(w http.ResponseWriter, r *http.Request) error {
	store, err := s.otlpTokens()
	if err != nil {
		return err
	}
	found, err := store.FindOTLPTokens(r.Context())
	if err != nil {
		return err
	}
	out := make([]otlpTokenJSON, len(found))
	for i, t := range found {
		out[i] = newOTLPTokenJSON(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

// createOTLPToken answers the secret once; only its SHA-256 is kept.
func (s *Server) createOTLPToken(w http.ResponseWriter, r *http.Request) error {
	store, err := s.otlpTokens()
	if err != nil {
		return err
	}
	var req otlpTokenRequest
	if err := DecodeJSON(w, r, &req, 0); err != nil {
		return err
	}
	prefix := req.Project + "/" // detritus' default: the whole project
	if req.SourcePrefix != nil {
		prefix = *req.SourcePrefix
	}
	secret, hint := NewSecret(OTLPTokenPrefix)
	t := &lodestone.OTLPToken{Name: req.Name, Project: req.Project, SourcePrefix: prefix, Hint: hint,
		Hash: HashToken(secret), CreatedAt: time.Now().UTC()}
	if p := PrincipalFrom(r.Context()); p != nil {
		t.CreatedBy = p.Name
	}
	if err := store.CreateOTLPToken(r.Context(), t); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": newOTLPTokenJSON(t), "secret": secret})
	return nil
}

func (s *Server) revokeOTLPToken(w http.ResponseWriter, r *http.Request) error {
	store, err := s.otlpTokens()
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return lodestone.Errorf(lodestone.EINVALID, "id must be a positive integer")
	}
	if err := store.RevokeOTLPToken(r.Context(), id, time.Now().UTC()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
