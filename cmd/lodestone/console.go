package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/alert"
	"github.com/lodestone-fleet/lodestone/console"
	"github.com/lodestone-fleet/lodestone/doctor"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/retention"
)

// newConsole wires the web console to the store's services. api returns the HTTP API once it is built: the
// console checks passwords through it, with the API's failure limits. updates are the OTA services the API uses.
func newConsole(cfg Config, st lodestone.Store, bus lodestone.EventBus, blobs lodestone.BlobStore,
	log *slog.Logger, api func() *httpapi.Server, updates console.UpdatesDeps) (*console.Console, error) {
	cc := console.Config{Logger: log, Devices: st, Registry: st, Groups: st, Telemetry: st, Crashes: st,
		Events: bus, IdleTimeout: cfg.ConsoleIdle, MaxAge: cfg.ConsoleMaxAge}
	cc.Series, _ = st.(lodestone.SeriesReader)
	cc.Counts, _ = st.(lodestone.DeviceCounter)
	cc.Membership, _ = st.(lodestone.GroupMembership)
	cc.Targets = st
	cc.Credentials, _ = st.(lodestone.CredentialStore)
	cc.Reports, _ = st.(lodestone.DeviceReporter)
	cc.Stability, cc.Timeline = st, st
	cc.Sessions, _ = st.(lodestone.SessionStore)
	// The log explorer and its live tail read the store (the tail follows it by id), crash uploads their blobs.
	cc.Logs.Logs, _ = st.(lodestone.LogStore)
	cc.Logs.Scanner, _ = st.(lodestone.LogScanner)
	cc.Logs.Head, _ = st.(lodestone.LogHead)
	cc.Logs.Uploads, _ = st.(lodestone.CrashUploadStore)
	cc.Logs.Blobs = blobs
	cc.Admin = adminDeps(cfg, st, log, api)
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

// adminDeps wires the console's administration pages to the same services as the API. The user accounts and the
// backup go through the API server (built after the console), so the credential cache and the one-backup-at-a-time
// lock are shared.
func adminDeps(cfg Config, st lodestone.Store, log *slog.Logger, api func() *httpapi.Server) console.AdminDeps {
	d := console.AdminDeps{OTLPTokens: apiTokens(st), Audit: auditStore(st), Accounts: apiAccounts(api),
		Backup: func(w http.ResponseWriter, r *http.Request) error { return api().ServeBackup(w, r) },
		Doctor: func(ctx context.Context) (doctor.Report, error) { return api().DoctorReport(ctx) }}
	d.Alerts, _ = st.(lodestone.AlertStore)
	d.AlertRules, _ = st.(lodestone.AlertRuleStore)
	d.Counts, _ = st.(lodestone.FleetCounter)
	if rs, ok := st.(lodestone.RetentionStore); ok {
		// The purge service holds no state of its own: this one and the leader's job share the store's last run.
		d.Retention = retention.New(rs, cfg.RetentionDays, 0, log)
	}
	urls, _ := alert.ParseURLs(cfg.AlertWebhookURL) // serve refused a bad one before the console is built
	minutes := cfg.AlertOfflineMinutes
	if cfg.OfflineAfter > 0 {
		minutes = max(1, int(cfg.OfflineAfter/time.Minute))
	}
	d.Webhooks = console.AlertSettings{URLs: urls, Signed: cfg.AlertWebhookSecret != "", OfflineMinutes: minutes,
		Retry: cfg.AlertRetry.String()}
	days := func(n int) string {
		if n <= 0 {
			return "forever"
		}
		return fmt.Sprintf("%d days", n)
	}
	d.RetentionSettings = []console.Setting{
		{Name: "Telemetry: metrics, heartbeats, faults, reboots, traces, update requests, finished alert deliveries",
			Value: days(cfg.RetentionDays), Env: "RETENTION_DAYS",
			Note: "devices, crash issues, ELF files and update state are kept"},
		{Name: "Audit log", Value: days(cfg.AuditRetentionDays), Env: "AUDIT_RETENTION_DAYS",
			Note: "a prune records itself, so the chain still verifies"},
	}
	if cfg.OTLP.TokensConfig != "" {
		d.RetentionSettings = append(d.RetentionSettings,
			console.Setting{Name: "OTLP log records", Value: days(cfg.OTLP.LogsTTLDays), Env: "--logs-ttl-days"},
			console.Setting{Name: "Crash uploads", Value: days(cfg.OTLP.CrashesTTLDays), Env: "--crashes-ttl-days"})
	}
	return d
}

// apiAccounts reaches the API's authenticator when a page asks (the API server is built after the console).
type apiAccounts func() *httpapi.Server

func (a apiAccounts) HashPassword(p string) (string, error) { return a().Accounts().HashPassword(p) }
func (a apiAccounts) IsConfigured(name string) bool         { return a().Accounts().IsConfigured(name) }
func (a apiAccounts) Forget()                               { a().Accounts().Forget() }
func (a apiAccounts) ConfiguredUsers() []httpapi.ConfiguredUser {
	return a().Accounts().ConfiguredUsers()
}
