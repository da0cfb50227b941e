// Package console is lodestone's web console: server-rendered pages under /ui/ from templates and static files
// embedded in the binary, with sign-in, server-side sessions, CSRF tokens and a strict Content-Security-Policy.
// It calls the same domain services as the HTTP API, with the signed-in user in the request context.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config holds the console's services and settings. Nil services leave their pages saying the feature is not
// available on this server.
type Config struct {
	Logger     *slog.Logger
	Devices    lodestone.DeviceService
	Registry   lodestone.DeviceRegistry
	Groups     lodestone.GroupService
	Telemetry  lodestone.TelemetryService
	Crashes    lodestone.CrashService
	Series     lodestone.SeriesReader
	Counts     lodestone.DeviceCounter
	Membership lodestone.GroupMembership // the device page's groups
	Targets    interface {               // the device page's update state (a lodestone.OTAStore)
		FindTarget(ctx context.Context, deviceID string) (*lodestone.OTATarget, error)
	}
	Credentials lodestone.CredentialStore // device keys on the device page
	Reports     lodestone.DeviceReporter  // the device report page (device_report.go)
	Stability   lodestone.StabilityReader // the stability page (stability.go)
	Timeline    lodestone.TimelineReader  // the device page's timeline
	Events      lodestone.EventBus        // live updates; nil: pages do not update live
	Sessions    lodestone.SessionStore

	// Each area of part 2 keeps its dependencies in its own struct (declared in its file).
	Updates UpdatesDeps
	Logs    LogsDeps
	Admin   AdminDeps

	// SignIn checks a password with the API's rules and failure limits (httpapi.Server.SignIn); nil hides the
	// sign-in form.
	SignIn func(w http.ResponseWriter, r *http.Request, user, pass string) (*lodestone.Principal, error)
	// OIDC, when set, offers sign-in with the OpenID provider (authorization code with PKCE).
	OIDC *OIDCConfig

	IdleTimeout time.Duration // a session unused this long ends; default 1 h
	MaxAge      time.Duration // a session ends this long after sign-in whatever its use; default 12 h
	// IngestURL is shown in the empty states' curl example; default the address the browser used.
	IngestURL string
}

// Console serves the web console. Mount it at /ui/.
type Console struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	oidc  *oidcClient
	now   func() time.Time

	counts  breakdownCache
	streams streamCount
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	c := &Console{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), now: time.Now}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	if cfg.OIDC != nil {
		c.oidc = newOIDCClient(*cfg.OIDC)
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	c.mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The files change only with the binary; a day of caching is safe with revalidation on each restart.
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET /ui/login", c.loginPage)
	c.mux.HandleFunc("POST /ui/login", c.login)
	c.mux.HandleFunc("GET /ui/oidc/login", c.oidcLogin)
	c.mux.HandleFunc("GET /ui/oidc/callback", c.oidcCallback)
	c.mux.HandleFunc("POST /ui/logout", c.user(lodestone.RoleViewer, c.logout))

	c.mux.HandleFunc("GET /ui/{$}", c.user(lodestone.RoleViewer, c.overview))
	c.mux.HandleFunc("GET /ui/devices", c.user(lodestone.RoleViewer, c.devices))
	c.mux.HandleFunc("POST /ui/devices", c.user(lodestone.RoleProvisioner, c.registerOne))
	c.mux.HandleFunc("POST /ui/devices/bulk", c.user(lodestone.RoleProvisioner, c.registerBulk))
	c.mux.HandleFunc("GET /ui/devices/{id}", c.user(lodestone.RoleViewer, c.device))
	c.mux.HandleFunc("GET /ui/faults", c.user(lodestone.RoleViewer, c.faults))
	c.mux.HandleFunc("GET /ui/crashes", c.user(lodestone.RoleViewer, c.crashes))
	c.mux.HandleFunc("GET /ui/crashes/{id}", c.user(lodestone.RoleViewer, c.crash))
	c.mux.HandleFunc("POST /ui/crashes/{id}/state", c.user(lodestone.RoleProvisioner, c.crashState))
	c.mux.HandleFunc("POST /ui/crashes/{id}/merge", c.user(lodestone.RoleProvisioner, c.crashMerge))
	c.mux.HandleFunc("GET /ui/metrics", c.user(lodestone.RoleViewer, c.metrics))
	c.mux.HandleFunc("GET /ui/fleet", c.user(lodestone.RoleViewer, c.fleet))
	c.mux.HandleFunc("GET /ui/api/series", c.user(lodestone.RoleViewer, c.series))
	c.mux.HandleFunc("GET /ui/api/totals", c.user(lodestone.RoleViewer, c.totals))
	c.mux.HandleFunc("GET /ui/events", c.user(lodestone.RoleViewer, c.events))
	// Each area of part 2 registers its own pages (updates.go, logsview.go, groupsview.go, admin.go).
	c.routesUpdates()
	c.routesLogs()
	c.routesGroups()
	c.routesAdmin()
	c.routesMore()
	c.mux.HandleFunc("/ui/", c.notFound)
}

// csp allows only the console's own scripts, styles and connections: no inline script or style, no framing, and
// forms post only to the console.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// request carries the signed-in user through a page handler.
type request struct {
	*http.Request
	sess *lodestone.Session
	user *lodestone.Principal
	csrf string
}

type pageFunc func(w http.ResponseWriter, r *request) error

// user runs h for a signed-in user holding at least need; the server refuses what the role may not do whatever
// the page showed. State-changing requests must carry the session's CSRF token. The user and the request's
// audit details go into the context, so the domain services and the audit log see who acted, via the console.
func (c *Console) user(need lodestone.Role, h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, secret, err := c.session(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if sess == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/ui/events" && r.URL.Path != "/ui/api/series" {
				http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "sign in first"))
			return
		}
		p := &lodestone.Principal{Name: sess.UserName, Role: sess.Role}
		req := &request{sess: sess, user: p, csrf: csrfToken(secret)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkCSRF(r, req.csrf); err != nil {
				c.fail(w, r, req, err)
				return
			}
		}
		if !p.Allows(need) {
			c.fail(w, r, req, lodestone.Errorf(lodestone.EFORBIDDEN, "your role (%s) may not do this; %s or admin may",
				p.Role, need))
			return
		}
		ctx := lodestone.NewContextWithPrincipal(r.Context(), p)
		ctx = lodestone.NewContextWithAuditRequest(ctx, lodestone.AuditRequest{ClientAddr: httpapi.ClientIP(ctx),
			RequestID: httpapi.RequestID(ctx), Via: lodestone.ViaConsole})
		req.Request = r.WithContext(ctx)
		if err := h(w, req); err != nil {
			c.fail(w, req.Request, req, err)
		}
	}
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	sess, secret, _ := c.session(w, r)
	var req *request
	if sess != nil {
		req = &request{Request: r, sess: sess, user: &lodestone.Principal{Name: sess.UserName, Role: sess.Role},
			csrf: csrfToken(secret)}
	}
	c.fail(w, r, req, lodestone.Errorf(lodestone.ENOTFOUND, "there is no page at %s", r.URL.Path))
}

// fail answers an error as a page (or JSON for the console's data endpoints) with the status its code maps to.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, req *request, err error) {
	status := httpapi.ErrorStatus(err)
	msg := lodestone.ErrorMessage(err)
	if status == http.StatusInternalServerError {
		c.log.Error("console", "path", r.URL.Path, "err", err)
		msg = "something went wrong on the server; the log has the details"
	}
	if r.URL.Path == "/ui/api/series" || r.URL.Path == "/ui/events" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		writeJSONBody(w, map[string]string{"error": msg, "code": lodestone.ErrorCode(err)})
		return
	}
	pd := &pageData{Title: http.StatusText(status), Data: errorPage{Status: status, Message: msg}}
	if req != nil {
		pd.User, pd.CSRF = req.user, req.csrf
	}
	c.render(w, r, status, "error", pd)
}

type errorPage struct {
	Status  int
	Message string
}

// ctx returns the request's context (for services).
func (r *request) ctx() context.Context { return r.Context() }
