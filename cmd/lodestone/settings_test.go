package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
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
		`setting=--static-dir instead="lodestone has no dashboard yet`,
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
