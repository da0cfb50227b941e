package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeWarnsAboutInactiveSettings starts serve with ferrite's flags that lodestone accepts but does not act on:
// each gets a startup warning naming what to use instead, and --elf-dir and --firmware-dir create nothing.
func TestServeWarnsAboutInactiveSettings(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("KEYCLOAK_CLIENT_SECRET=s\nINGEST_API_KEYS=typo\nRETENTION_DAYS=30\n"), 0o600)
	env := map[string]string{"BASIC_AUTH_PASS": "pw", "RUST_LOG": "info,ferrite_server=debug,tower_http=warn"}
	var log syncBuffer
	ready := make(chan string, 1)
	c := &serveCmd{stdout: io.Discard, stderr: &log, getenv: func(k string) string { return env[k] }, dir: dir,
		ready: ready}
	elfs, firmware := filepath.Join(dir, "elfs"), filepath.Join(dir, "firmware")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, []string{"--http", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
			"--elf-dir", elfs, "--firmware-dir", firmware, "--addr2line", "/usr/bin/arm-none-eabi-addr2line",
			"--static-dir", filepath.Join(dir, "web"), "--logs-ttl-days", "3"})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	out := log.String()
	for _, want := range []string{
		`setting=--elf-dir instead="ELF files are kept in the blob store (--blobs)`,
		`setting=--firmware-dir instead="firmware images are kept in the blob store (--blobs)`,
		`setting=--addr2line instead="symbolication is built in`,
		`setting=--static-dir instead="lodestone serves its own console at /ui/`,
		`the OTLP receiver runs only with --tokens-config`,
		`setting="RUST_LOG ferrite_server=debug,tower_http=warn" instead="lodestone has one log level`,
		`.env: INGEST_API_KEYS, KEYCLOAK_CLIENT_SECRET" instead="not lodestone settings`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning %q in\n%s", want, out)
		}
	}
	for _, d := range []string{elfs, firmware} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s was created (%v): files go to the blob store", d, err)
		}
	}
}

// A plain configuration warns about nothing.
func TestConfigNoInactiveSettings(t *testing.T) {
	env := map[string]string{"RUST_LOG": "debug", "US_AUTH_USERNAME": "u", "US_AUTH_PASSWORD": "p",
		"FUOTA_TLS_CERT": "c", "FUOTA_TLS_KEY": "k"}
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: t.TempDir()}
	cfg, err := c.config([]string{"--tokens-config", "t.toml", "--otlp-grpc", ""})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.inactive(); len(got) != 0 || cfg.LogLevel != "debug" {
		t.Fatalf("inactive %+v, level %q", got, cfg.LogLevel)
	}
	delete(env, "US_AUTH_USERNAME")
	delete(env, "US_AUTH_PASSWORD")
	if cfg, err = c.config(nil); err != nil {
		t.Fatal(err)
	}
	if got := cfg.inactive(); len(got) != 1 || !strings.Contains(got[0].setting, "FUOTA_TLS_CERT") {
		t.Fatalf("FUOTA settings without the listener: %+v", got)
	}
	// Backend-specific settings given for the other backend.
	env = map[string]string{}
	if cfg, err = c.config([]string{"--leader-retry", "1s", "--sqlite-sync", "normal"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.inactive(); len(got) != 1 || got[0].setting != "--leader-retry" {
		t.Fatalf("--leader-retry with SQLite: %+v", got)
	}
	if cfg, err = c.config([]string{"--db", "postgres://u@h/db", "--leader-retry", "1s", "--sqlite-sync", "normal"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.inactive(); len(got) != 1 || got[0].setting != "--sqlite-sync" {
		t.Fatalf("--sqlite-sync with PostgreSQL: %+v", got)
	}
}

// BASIC_AUTH_USERS entries that ferrite's format skips or makes viewers are named, without their passwords.
func TestConfigUsersNotes(t *testing.T) {
	env := map[string]string{"BASIC_AUTH_USERS": "ok:Secr1:admin, v:Secr2 ,nopass,:Secr0,typo:Secr3:admn,colon:Sec:rZq:admin,"}
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: t.TempDir()}
	cfg, err := c.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range cfg.inactive() {
		got = append(got, s.setting)
		if strings.Contains(s.setting+s.instead, "Sec") || strings.Contains(s.setting+s.instead, "Zq") {
			t.Errorf("a password part in %+v", s)
		}
	}
	want := "BASIC_AUTH_USERS entry 3;BASIC_AUTH_USERS entry 4;BASIC_AUTH_USERS user typo;BASIC_AUTH_USERS user colon"
	if strings.Join(got, ";") != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// RUST_LOG: its level is used, module filters and a regex are reported, and LODESTONE_LOG_LEVEL wins.
func TestConfigRustLog(t *testing.T) {
	for _, tc := range []struct {
		rust, own, level, ignored string
	}{
		{"warn", "", "warn", ""},
		{"TRACE", "", "debug", ""},
		{"ferrite_server=debug", "", "info", "RUST_LOG ferrite_server=debug"},
		{"error,hyper=off/conn", "", "error", "RUST_LOG hyper=off,/conn"},
		{"off", "", "error", "RUST_LOG=off"},
		{"debug", "warn", "warn", ""},
		{"verbose", "", "info", "RUST_LOG verbose"},
	} {
		env := map[string]string{"RUST_LOG": tc.rust, "LODESTONE_LOG_LEVEL": tc.own}
		c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: t.TempDir()}
		cfg, err := c.config(nil)
		if err != nil {
			t.Fatal(err)
		}
		var notes []string
		for _, s := range cfg.inactive() {
			notes = append(notes, s.setting)
		}
		if cfg.LogLevel != tc.level || strings.Join(notes, ";") != tc.ignored {
			t.Errorf("RUST_LOG=%q LODESTONE_LOG_LEVEL=%q: level %q, warnings %q; want %q, %q", tc.rust, tc.own,
				cfg.LogLevel, notes, tc.level, tc.ignored)
		}
	}
}

// A partial or doubled OpenID Connect setup stops startup with the missing variable named, instead of falling
// back to Basic sign-in.
func TestConfigPartialSignIn(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" accepted
	}{
		{map[string]string{"KEYCLOAK_URL": "https://kc", "KEYCLOAK_REALM": "r", "KEYCLOAK_CLIENT_ID": "c"}, ""},
		{map[string]string{"KEYCLOAK_URL": "https://kc", "KEYCLOAK_REALM": "r", "KEYCLOAK_CLIENT_ID": "c",
			"OIDC_ROLE_CLAIM": "realm_access.roles"}, ""},
		{map[string]string{"OIDC_ISSUER": "https://idp", "OIDC_CLIENT_ID": "c"}, ""},
		{map[string]string{"KEYCLOAK_URL": "https://kc", "KEYCLOAK_REALM": "r"}, "KEYCLOAK_CLIENT_ID not set"},
		{map[string]string{"KEYCLOAK_CLIENT_ID": "c"}, "KEYCLOAK_URL and KEYCLOAK_REALM not set"},
		{map[string]string{"OIDC_ISSUER": "https://idp"}, "OIDC_CLIENT_ID not set"},
		{map[string]string{"OIDC_CLIENT_ID": "c"}, "OIDC_ISSUER not set"},
		{map[string]string{"OIDC_ROLE_CLAIM": "roles"}, "OIDC_ISSUER not set"},
		{map[string]string{"OIDC_ISSUER": "https://idp", "OIDC_CLIENT_ID": "c", "KEYCLOAK_URL": "https://kc"},
			"OIDC_ISSUER and KEYCLOAK_URL are both set"},
	} {
		c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return tc.env[k] },
			dir: t.TempDir()}
		_, err := c.config(nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: got %v, want %q", tc.env, err, tc.want)
		}
	}
}

// TestREADMEConfigurationTable compares the README's Configuration table with what serve registers: every flag
// and environment variable is documented, and every documented one exists.
func TestREADMEConfigurationTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	name := regexp.MustCompile("^(--[a-z0-9-]+|[A-Z][A-Z0-9_]+)$")
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.TrimSpace(cells[0]) != "" || strings.HasPrefix(cells[1], "---") {
			continue
		}
		rows++
		// The first cell names the settings, each in backticks: "`--http` / `LODESTONE_HTTP`".
		parts := strings.Split(cells[1], "`")
		for i := 1; i < len(parts); i += 2 {
			if name.MatchString(parts[i]) {
				documented[parts[i]] = true
			}
		}
	}
	if rows < 10 {
		t.Fatalf("found %d table rows in the Configuration section", rows)
	}
	registered := map[string]bool{}
	cfg := defaultConfig()
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard}
	c.flags(&cfg).VisitAll(func(f *flag.Flag) { registered["--"+f.Name] = true })
	for _, e := range envVars {
		registered[e.name] = true
	}
	var undocumented, unknown []string
	for n := range registered {
		if !documented[n] {
			undocumented = append(undocumented, n)
		}
	}
	for n := range documented {
		if !registered[n] {
			unknown = append(unknown, n)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unknown)
	if len(undocumented) > 0 {
		t.Errorf("registered but not in the README's Configuration table: %s", strings.Join(undocumented, " "))
	}
	if len(unknown) > 0 {
		t.Errorf("in the README's Configuration table but not registered: %s", strings.Join(unknown, " "))
	}
}

// 'lodestone help serve' lists every flag and environment variable serve reads.
func TestHelpServeListsEverySetting(t *testing.T) {
	var out strings.Builder
	if code := run(t.Context(), []string{"help", "serve"}, &out, io.Discard, func(string) string { return "" }); code != 0 {
		t.Fatalf("help serve: %d", code)
	}
	cfg := defaultConfig()
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard}
	c.flags(&cfg).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), " --"+f.Name+" ") && !strings.Contains(out.String(), " --"+f.Name+"\n") {
			t.Errorf("flag --%s not in help serve", f.Name)
		}
	})
	for _, e := range envVars {
		if !strings.Contains(out.String(), "  "+e.name+" ") {
			t.Errorf("%s not in help serve", e.name)
		}
	}
}
