package main

import (
	"fmt"
	"slices"
	"strings"
)

// inactiveSetting is a setting that was given but has no effect, and what to use instead. serve logs each one
// at start, so nobody relies on a ferrite flag or a misspelt variable silently.
type inactiveSetting struct {
	setting, instead string
}

// inactive lists the given settings that this version accepts but does not act on.
func (c *Config) inactive() []inactiveSetting {
	var out []inactiveSetting
	add := func(setting, instead string) { out = append(out, inactiveSetting{setting, instead}) }
	if c.ELFDir != "" {
		add("--elf-dir", "ELF files are kept in the blob store (--blobs); upload the ones in "+c.ELFDir+
			" with 'lodestone symbols upload FILE'")
	}
	if c.FirmwareDir != "" {
		add("--firmware-dir", "firmware images are kept in the blob store (--blobs); upload the ones in "+
			c.FirmwareDir+" with POST /ota/firmware")
	}
	if c.Addr2line != "" {
		add("--addr2line", "symbolication is built in and reads the uploaded ELF files; no addr2line is run")
	}
	if c.StaticDir != "" {
		add("--static-dir", "lodestone serves its own console at /ui/; nothing is served from "+c.StaticDir)
	}
	if isPostgresURL(c.DB) && c.SQLiteSync != "FULL" {
		add("--sqlite-sync", "the database is PostgreSQL; its durability is set on the PostgreSQL server")
	}
	if !isPostgresURL(c.DB) && c.LeaderRetry != defaultConfig().LeaderRetry {
		add("--leader-retry", "with SQLite one process runs the periodic jobs; there is no leader to take over")
	}
	if c.FUOTAUser == "" && c.FUOTAPass == "" {
		var given []string
		if c.FUOTAAddr != defaultConfig().FUOTAAddr {
			given = append(given, "--fuota-addr/US_SERVER_PORT")
		}
		if c.FUOTACert != "" || c.FUOTAKey != "" {
			given = append(given, "FUOTA_TLS_CERT/FUOTA_TLS_KEY")
		}
		if len(given) > 0 {
			add(strings.Join(given, ", "), "the FUOTA listener starts only with US_AUTH_USERNAME and US_AUTH_PASSWORD")
		}
	}
	if c.OTLP.TokensConfig == "" {
		d := defaultOTLPConfig()
		d.TokensConfig = c.OTLP.TokensConfig
		if c.OTLP != d {
			add("--otlp-* / --max-dump-bytes / --logs-ttl-days / --crashes-ttl-days / --janitor-interval",
				"the OTLP receiver runs only with --tokens-config (LODESTONE_TOKENS_CONFIG)")
		}
	}
	out = append(out, c.usersNotes()...)
	return append(out, c.notes...)
}

// usersNotes names the BASIC_AUTH_USERS entries that ferrite's format reads differently from what they seem to
// say: skipped, or given viewer rights. The messages name the user, never a part that may be a password.
func (c *Config) usersNotes() []inactiveSetting {
	var out []inactiveSetting
	for i, e := range strings.Split(c.BasicAuthUsers, ",") {
		e = strings.TrimSpace(e)
		parts := strings.Split(e, ":")
		switch {
		case e == "":
		case len(parts) < 2 || parts[0] == "":
			out = append(out, inactiveSetting{fmt.Sprintf("BASIC_AUTH_USERS entry %d", i+1),
				"skipped: an entry is user:password or user:password:role"})
		case len(parts) > 3:
			out = append(out, inactiveSetting{"BASIC_AUTH_USERS user " + parts[0], "the password ends at its first " +
				"':' and the role is the part after it (ferrite's format); choose a password without ':' or ','"})
		case len(parts) == 3 && !slices.Contains([]string{"admin", "provisioner", "viewer"}, strings.ToLower(parts[2])):
			out = append(out, inactiveSetting{"BASIC_AUTH_USERS user " + parts[0], "the role is not admin, provisioner " +
				"or viewer, so the user is a viewer; a ':' in the password would also end up here"})
		}
	}
	return out
}

// rustLog applies ferrite's RUST_LOG filter (env_logger / tracing syntax: "level,target=level,.../regex"). Its
// bare level sets the log level; lodestone has one level for the whole process, so target filters and the regex
// are reported as ignored.
func rustLog(c *Config, v string) error {
	filter, regex, hasRegex := strings.Cut(v, "/")
	var ignored []string
	for _, d := range strings.Split(filter, ",") {
		d = strings.TrimSpace(d)
		switch l := strings.ToLower(d); l {
		case "":
		case "trace", "debug":
			c.LogLevel = "debug"
		case "info", "warn", "error":
			c.LogLevel = l
		case "off":
			c.LogLevel = "error"
			c.notes = append(c.notes, inactiveSetting{"RUST_LOG=off",
				"lodestone cannot turn its log off; it logs errors only (LODESTONE_LOG_LEVEL=error)"})
		default:
			ignored = append(ignored, d)
		}
	}
	if hasRegex {
		ignored = append(ignored, "/"+regex)
	}
	if len(ignored) > 0 {
		c.notes = append(c.notes, inactiveSetting{"RUST_LOG " + strings.Join(ignored, ","),
			"lodestone has one log level for the whole process: set it with LODESTONE_LOG_LEVEL or --log-level"})
	}
	return nil
}

// checkSignIn refuses a partial OpenID Connect configuration: without it users would silently get Basic sign-in
// (ferrite's behaviour for incomplete KEYCLOAK_* variables) while the operator believes the IdP guards the API.
func (c *Config) checkSignIn() error {
	keycloak := map[string]string{"KEYCLOAK_URL": c.KeycloakURL, "KEYCLOAK_REALM": c.KeycloakRealm,
		"KEYCLOAK_CLIENT_ID": c.KeycloakClientID}
	var kcSet, kcMissing []string
	for _, k := range []string{"KEYCLOAK_URL", "KEYCLOAK_REALM", "KEYCLOAK_CLIENT_ID"} {
		if keycloak[k] != "" {
			kcSet = append(kcSet, k)
		} else {
			kcMissing = append(kcMissing, k)
		}
	}
	switch {
	case len(kcSet) > 0 && c.OIDCIssuer != "":
		return fmt.Errorf("OIDC_ISSUER and %s are both set: configure one identity provider, either OIDC_ISSUER "+
			"with OIDC_CLIENT_ID or the three KEYCLOAK_* variables", strings.Join(kcSet, ", "))
	case len(kcSet) > 0 && len(kcMissing) > 0:
		return fmt.Errorf("%s not set: Keycloak sign-in needs KEYCLOAK_URL, KEYCLOAK_REALM and KEYCLOAK_CLIENT_ID "+
			"(%s given)", strings.Join(kcMissing, " and "), strings.Join(kcSet, ", "))
	case c.OIDCIssuer != "" && c.OIDCClientID == "":
		return fmt.Errorf("OIDC_CLIENT_ID not set: with OIDC_ISSUER it names the client a token must be issued " +
			"for; without it any client of the issuer would sign in")
	case c.OIDCIssuer == "" && len(kcSet) == 0 && c.OIDCClientID != "":
		return fmt.Errorf("OIDC_ISSUER not set: OIDC_CLIENT_ID is given, but sign-in with OpenID Connect needs the issuer")
	case c.OIDCIssuer == "" && len(kcSet) == 0 && c.OIDCRoleClaim != "":
		return fmt.Errorf("OIDC_ISSUER not set: OIDC_ROLE_CLAIM is given, but sign-in with OpenID Connect needs " +
			"OIDC_ISSUER and OIDC_CLIENT_ID, or the three KEYCLOAK_* variables")
	}
	return nil
}
