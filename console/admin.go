package console

// This file holds the console's pages for administration: users, tokens, keys, webhooks, retention, backup, audit
// log. Each page lives in an admin_*.go file; this one has the area's dependencies, routes and the overview.

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/doctor"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// UserAccounts is what user management needs beyond the store: the API's password hashing, its users from the
// environment (read-only) and its cache of verified credentials, which must forget a changed user at once.
// *httpapi.Authn implements it.
type UserAccounts interface {
	HashPassword(pass string) (string, error)
	IsConfigured(name string) bool
	ConfiguredUsers() []httpapi.ConfiguredUser
	Forget()
}

// AlertSettings are the alert webhooks as configured (ALERT_WEBHOOK_URL and friends); they change with a restart.
type AlertSettings struct {
	URLs           []string // shown as scheme and host only: a Slack or Discord URL's path is its key
	Signed         bool     // ALERT_WEBHOOK_SECRET is set
	OfflineMinutes int
	Retry          string // the first retry's wait, as configured
}

// Setting is one configured value the console shows read-only, with where it is set.
type Setting struct {
	Name, Value, Env, Note string
}

// AdminDeps are the services these pages use; nil ones leave the pages saying the feature is not available.
// Users, API tokens and device keys come from Config.Credentials, the signed-in users from Config.Sessions.
type AdminDeps struct {
	Accounts   UserAccounts
	OTLPTokens lodestone.OTLPTokenStore
	Alerts     lodestone.AlertStore
	Webhooks   AlertSettings
	Retention  httpapi.Retention
	Counts     lodestone.FleetCounter
	// RetentionSettings are the retention periods of each kind of data, shown on the retention page.
	RetentionSettings []Setting
	// Backup streams a snapshot of the database as GET /admin/backup does (one at a time, recorded in the audit
	// log before it starts).
	Backup func(w http.ResponseWriter, r *http.Request) error
	Audit  lodestone.AuditStore
	// AlertRules keeps the alert rules and their alerts' states (admin_rules.go).
	AlertRules lodestone.AlertRuleStore
	// Doctor runs the health checks of GET /admin/doctor.
	Doctor func(ctx context.Context) (doctor.Report, error)
}

// adminPages are this area's templates (templates/NAME.html).
var adminPages = []string{"admin", "admin_users", "admin_tokens", "admin_keys", "admin_secret", "admin_alerts",
	"admin_retention", "admin_backup", "admin_audit", "admin_doctor", "admin_rules"}

func (c *Console) routesAdmin() {
	// The pages share a sub-navigation (templates/admin_nav.html), parsed into each of them here.
	for _, name := range adminPages {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html",
			"templates/"+name+".html", "templates/admin_nav.html")
		if err != nil {
			panic(fmt.Sprintf("console: parse template %s: %v", name, err)) // embedded files: a build error
		}
		c.pages[name] = t
	}
	admin := func(pattern string, h pageFunc) { c.mux.HandleFunc(pattern, c.user(lodestone.RoleAdmin, h)) }
	admin("GET /ui/admin", c.adminHome)
	admin("GET /ui/admin/users", c.adminUsers)
	admin("POST /ui/admin/users", c.adminCreateUser)
	admin("POST /ui/admin/users/{name}/role", c.adminUserRole)
	admin("POST /ui/admin/users/{name}/disable", c.adminUserDisable)
	admin("POST /ui/admin/users/{name}/enable", c.adminUserEnable)
	admin("POST /ui/admin/users/{name}/password", c.adminUserPassword)
	admin("POST /ui/admin/users/{name}/delete", c.adminUserDelete)
	admin("GET /ui/admin/tokens", c.adminTokens)
	admin("POST /ui/admin/tokens", c.adminCreateToken)
	admin("POST /ui/admin/tokens/{id}/revoke", c.adminRevokeToken)
	admin("POST /ui/admin/otlp-tokens", c.adminCreateOTLPToken)
	admin("POST /ui/admin/otlp-tokens/{id}/revoke", c.adminRevokeOTLPToken)
	admin("GET /ui/admin/keys", c.adminKeys)
	admin("POST /ui/admin/keys", c.adminCreateKey)
	admin("POST /ui/admin/keys/{id}/revoke", c.adminRevokeKey)
	admin("GET /ui/admin/alerts", c.adminAlerts)
	admin("GET /ui/admin/retention", c.adminRetention)
	admin("POST /ui/admin/retention", c.adminRunRetention)
	admin("GET /ui/admin/backup", c.adminBackupPage)
	admin("POST /ui/admin/backup", c.adminBackup)
	admin("GET /ui/admin/audit", c.adminAudit)
	admin("GET /ui/admin/doctor", c.adminDoctor)
	c.routesAdminRules()
	admin("POST /ui/devices/{id}/delete", c.adminDeleteDevice)
	// Device keys are a provisioner's, as in the API: the device page creates and revokes them too.
	prov := func(pattern string, h pageFunc) { c.mux.HandleFunc(pattern, c.user(lodestone.RoleProvisioner, h)) }
	prov("POST /ui/devices/{id}/keys", c.deviceCreateKey)
	prov("POST /ui/devices/{id}/keys/{key}/revoke", c.deviceRevokeKey)
}

// adminPage renders one of this area's pages with the Administration nav entry marked and the sub-navigation's
// current entry (sub).
func (c *Console) adminPage(w http.ResponseWriter, r *request, status int, name, sub, title string, data any) {
	pd := &pageData{Title: title, Nav: "admin", User: r.user, CSRF: r.csrf,
		Data: adminView{Sub: sub, Data: data}}
	c.render(w, r.Request, status, name, pd)
}

// adminView wraps a page's data with the sub-navigation's current entry.
type adminView struct {
	Sub  string
	Data any
}

type adminHomeView struct {
	Users, DisabledUsers, EnvUsers int
	APITokens, OTLPTokens          int
	DeviceKeys                     int
	Webhooks                       int
	FailedDeliveries               int
	RetentionDays                  int
	Retention                      bool
	AuditHead                      int64
	Audit                          bool
	Backup                         bool
}

func (c *Console) adminHome(w http.ResponseWriter, r *request) error {
	ctx := r.ctx()
	v := adminHomeView{Webhooks: len(c.cfg.Admin.Webhooks.URLs), Backup: c.cfg.Admin.Backup != nil}
	if a := c.cfg.Admin.Accounts; a != nil {
		v.EnvUsers = len(a.ConfiguredUsers())
	}
	if cs := c.cfg.Credentials; cs != nil {
		users, err := cs.FindUsers(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			v.Users++
			if u.Disabled() {
				v.DisabledUsers++
			}
		}
		toks, err := cs.FindTokens(ctx, lodestone.TokenFilter{})
		if err != nil {
			return err
		}
		for _, t := range toks {
			switch {
			case !t.Active():
			case t.Kind == lodestone.TokenAPI:
				v.APITokens++
			case t.Kind == lodestone.TokenDevice:
				v.DeviceKeys++
			}
		}
	}
	if s := c.cfg.Admin.OTLPTokens; s != nil {
		toks, err := s.FindOTLPTokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.RevokedAt == nil {
				v.OTLPTokens++
			}
		}
	}
	if a := c.cfg.Admin.Alerts; a != nil {
		failed, err := a.FindAlertDeliveries(ctx, lodestone.AlertFilter{Status: lodestone.DeliveryFailed,
			Limit: lodestone.MaxListLimit})
		if err != nil {
			return err
		}
		v.FailedDeliveries = len(failed)
	}
	if rt := c.cfg.Admin.Retention; rt != nil {
		v.Retention, v.RetentionDays = true, rt.Days()
	}
	if a := c.cfg.Admin.Audit; a != nil {
		head, err := a.AuditHead(ctx)
		if err != nil {
			return err
		}
		v.Audit, v.AuditHead = true, head.ID
	}
	c.adminPage(w, r, http.StatusOK, "admin", "", "Administration", v)
	return nil
}

// secretView is the page that shows a new secret once: a token, a key or a password.
type secretView struct {
	What   string // "API token", "OTLP token", "device key", "password"
	Name   string
	Secret string
	Use    string // how to use it
	Back   string // where to go next
	Sub    string
}

// showSecret answers a POST that created a secret with a page showing it, instead of the usual redirect: the
// secret is never stored, so it cannot cross a redirect (a cookie would leave it in the browser's cookie jar).
// The page is not cached; reloading it would post again and create another.
func (c *Console) showSecret(w http.ResponseWriter, r *request, v secretView) {
	w.Header().Set("Cache-Control", "no-store")
	c.adminPage(w, r, http.StatusCreated, "admin_secret", v.Sub, "New "+v.What, v)
}

// formID reads a positive integer id from the path.
func formID(r *request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, lodestone.Errorf(lodestone.EINVALID, "%s must be a positive integer id", name)
	}
	return id, nil
}

// done redirects to a page with a flash saying what happened, or what went wrong when err is a caller's mistake;
// other errors are the server's and return as they are.
func (c *Console) done(w http.ResponseWriter, r *request, to, ok string, err error) error {
	if err != nil {
		switch lodestone.ErrorCode(err) {
		case lodestone.EINVALID, lodestone.ECONFLICT, lodestone.ENOTFOUND:
			c.redirect(w, r.Request, to, flash{Msg: lodestone.ErrorMessage(err), Err: true})
			return nil
		}
		return err
	}
	c.redirect(w, r.Request, to, flash{Msg: ok})
	return nil
}

func (c *Console) credentials() (lodestone.CredentialStore, error) {
	if c.cfg.Credentials == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server keeps no users or tokens")
	}
	return c.cfg.Credentials, nil
}

// forget makes a change to users or tokens take effect on this replica at once.
func (c *Console) forget() {
	if a := c.cfg.Admin.Accounts; a != nil {
		a.Forget()
	}
}
