package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

type loginView struct {
	Next     string
	Password bool // the form is offered
	OIDC     bool
	User     string
}

// loginCSRF returns the pre-session secret's form token, setting the cookie when there is none.
func (c *Console) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == 43 {
		return csrfToken(ck.Value)
	}
	secret := newSecret()
	c.setCookie(w, r, loginCookie, secret, 30*time.Minute)
	return csrfToken(secret)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, _, err := c.session(w, r); err == nil && s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.renderLogin(w, r, http.StatusOK, "", c.takeFlash(w, r))
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, user string, f *flash) {
	next := safeNext(r.FormValue("next"))
	pd := &pageData{Title: "Sign in", CSRF: c.loginCSRF(w, r), Flash: f,
		Data: loginView{Next: next, Password: c.cfg.SignIn != nil, OIDC: c.oidc != nil, User: user}}
	c.render(w, r, status, "login", pd)
}

// login checks the form with the API's password rules and failure limits and starts a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderLogin(w, r, http.StatusBadRequest, "", &flash{Msg: "unreadable form", Err: true})
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !equalTokens(r.PostFormValue("csrf"), csrfToken(ck.Value)) {
		c.renderLogin(w, r, http.StatusForbidden, "", &flash{Msg: "The sign-in form expired; please try again.",
			Err: true})
		return
	}
	if c.cfg.SignIn == nil {
		c.renderLogin(w, r, http.StatusForbidden, "", &flash{Msg: "Password sign-in is off on this server.",
			Err: true})
		return
	}
	user := strings.TrimSpace(r.PostFormValue("username"))
	p, err := c.cfg.SignIn(w, r, user, r.PostFormValue("password"))
	if err != nil {
		status, msg := http.StatusUnauthorized, "Wrong user name or password."
		switch code := lodestone.ErrorCode(err); {
		case code == lodestone.EUNAUTHORIZED:
			if strings.Contains(lodestone.ErrorMessage(err), "disabled") { // said only for the right password
				msg = "This account is disabled; ask an admin."
			}
		case code == "rate_limited":
			status, msg = http.StatusTooManyRequests, "Too many failed sign-ins from here; wait a minute and try again."
		default:
			c.log.Error("console sign-in", "err", err)
			status, msg = http.StatusServiceUnavailable, "Sign-in is not possible right now; try again shortly."
		}
		c.renderLogin(w, r, status, user, &flash{Msg: msg, Err: true})
		return
	}
	if err := c.startSession(w, r, p, "password"); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session in the store, so the cookie is worthless on every replica.
func (c *Console) logout(w http.ResponseWriter, r *request) error {
	if err := c.cfg.Sessions.DeleteSession(r.ctx(), r.sess.Hash); err != nil {
		return err
	}
	c.setCookie(w, r.Request, sessionCookie, "", -1)
	c.redirect(w, r.Request, "/ui/login", flash{Msg: "You are signed out."})
	return nil
}
