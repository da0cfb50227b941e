package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Cookie names. The session cookie holds a random secret whose SHA-256 is the stored session's key.
const (
	sessionCookie = "lodestone_session"
	loginCookie   = "lodestone_login" // a pre-session secret: the sign-in form's CSRF token and the OIDC state
	flashCookie   = "lodestone_flash"
)

// touchEvery bounds session writes: LastSeen is moved at most once a minute per session.
const touchEvery = time.Minute

func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// csrfToken derives a form token from a cookie secret. It differs from the stored hash (another prefix), so the
// database never holds a usable token, and every replica derives the same one.
func csrfToken(secret string) string {
	sum := sha256.Sum256([]byte("lodestone-csrf\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// checkCSRF refuses a state-changing request whose form token is not the session's, or that a browser says came
// from another origin.
func (c *Console) checkCSRF(r *http.Request, want string) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(r, o) {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "this form was sent from another site (%s)", o)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseMultipartForm(maxFormBytes); err != nil && err != http.ErrNotMultipart {
		return lodestone.Errorf(lodestone.EINVALID, "unreadable form: %v", err)
	}
	if !equalTokens(r.PostFormValue("csrf"), want) {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "the form's security token is missing or stale; reload the page and try again")
	}
	return nil
}

// maxFormBytes bounds a form body, bulk registration files included.
const maxFormBytes = 4 << 20

func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil, MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		ck.MaxAge = -1
	}
	http.SetCookie(w, ck)
}

// session returns the request's live session and its secret, or nil when there is none, it expired or it was
// ended. An expired session is deleted and its cookie cleared.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*lodestone.Session, string, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 || c.cfg.Sessions == nil {
		return nil, "", nil
	}
	hash := hashSecret(ck.Value)
	s, err := c.cfg.Sessions.FindSession(r.Context(), hash)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		c.setCookie(w, r, sessionCookie, "", -1)
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	now := c.now()
	if !now.Before(s.ExpiresAt) || now.Sub(s.LastSeen) >= c.cfg.IdleTimeout {
		if err := c.cfg.Sessions.DeleteSession(r.Context(), hash); err != nil {
			return nil, "", err
		}
		c.setCookie(w, r, sessionCookie, "", -1)
		return nil, "", nil
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		if err := c.cfg.Sessions.TouchSession(r.Context(), hash, now); err != nil &&
			lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return nil, "", err
		}
	}
	return s, ck.Value, nil
}

// startSession signs p in: a new session row and its cookie. Expired sessions of everyone are swept here, so the
// table stays small without a job.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, p *lodestone.Principal, via string) error {
	if c.cfg.Sessions == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no console sessions")
	}
	now := c.now().UTC().Truncate(time.Millisecond)
	if _, err := c.cfg.Sessions.DeleteExpiredSessions(r.Context(), now, now.Add(-c.cfg.IdleTimeout)); err != nil {
		return err
	}
	secret := newSecret()
	s := &lodestone.Session{Hash: hashSecret(secret), UserName: p.Name, Role: p.Role, Via: via, CreatedAt: now,
		LastSeen: now, ExpiresAt: now.Add(c.cfg.MaxAge)}
	if err := c.cfg.Sessions.CreateSession(r.Context(), s); err != nil {
		return err
	}
	c.setCookie(w, r, sessionCookie, secret, c.cfg.MaxAge)
	c.setCookie(w, r, loginCookie, "", -1)
	c.log.Info("console sign-in", "user", p.Name, "role", p.Role.String(), "via", via)
	return nil
}

// flash is the message a POST leaves for the page it redirects to, with per-row results of a bulk action.
type flash struct {
	Msg  string     `json:"m"`
	Err  bool       `json:"e,omitempty"`
	Rows []flashRow `json:"r,omitempty"`
	More int        `json:"x,omitempty"` // rows left out to keep the cookie small
}

type flashRow struct {
	Row      int    `json:"n"`
	DeviceID string `json:"d,omitempty"`
	Error    string `json:"err,omitempty"`
}

// maxFlashBytes keeps the flash cookie well under browsers' 4 KB limit.
const maxFlashBytes = 3000

// redirect answers a POST with a redirect to a console path and a flash message (POST → redirect → GET).
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, to string, f flash) {
	for {
		raw, _ := json.Marshal(f)
		v := base64.RawURLEncoding.EncodeToString(raw)
		if len(v) <= maxFlashBytes || len(f.Rows) == 0 {
			c.setCookie(w, r, flashCookie, v, time.Minute)
			break
		}
		cut := max(len(f.Rows)/4, 1)
		f.More += cut
		f.Rows = f.Rows[:len(f.Rows)-cut]
	}
	http.Redirect(w, r, safeNext(to), http.StatusSeeOther)
}

// takeFlash reads and clears the flash message.
func (c *Console) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	ck, err := r.Cookie(flashCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	c.setCookie(w, r, flashCookie, "", -1)
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	var f flash
	if err != nil || json.Unmarshal(raw, &f) != nil {
		return nil
	}
	return &f
}

// safeNext keeps a redirect target on this console: a path under /ui/, never a scheme, a host, "//" or "\",
// which browsers read as another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "\\\r\n\t") || strings.HasPrefix(next, "//") {
		return "/ui/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.Contains(u.Path, "/../") {
		return "/ui/"
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
