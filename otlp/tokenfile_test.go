package otlp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/otlp"
)

const tokenEntry = `[[token]]
id = "a"
secret = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$BDY2yZMghVRfzM/ZnWJRYnbYdyXpxGgbqWqx3PdMCfg"
project = "tests"
source_prefix = "tests/"
`

// A key the loader does not know is an error naming it: a misspelt rate limit must not silently keep its default.
func TestTokenFileUnknownKeys(t *testing.T) {
	for name, tc := range map[string]struct{ toml, key string }{
		"rate_limit":    {tokenEntry + "[rate_limit]\nlogs_per_minute = 5\nlog_burst = 1\n", "rate_limit.log_burst"},
		"token":         {strings.Replace(tokenEntry, "project =", "sorce_prefix = \"x\"\nproject =", 1), "token.sorce_prefix"},
		"top level":     {"rate_limits_enabled = true\n" + tokenEntry, "rate_limits_enabled"},
		"unknown table": {tokenEntry + "[ratelimit]\nlogs_burst = 1\n", "ratelimit"},
		"schema":        {tokenEntry + "[[schema]]\nproject = \"tests\"\nkind = \"crash_metadata\"\npath = \"s.json\"\nformat = 1\n", "schema.format"},
	} {
		_, err := otlp.ParseTokenFile([]byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), `"`+tc.key+`"`) {
			t.Errorf("%s: want an error naming %q, got %v", name, tc.key, err)
		}
	}
	for _, bad := range []string{"-1", "nan", "inf"} {
		_, err := otlp.ParseTokenFile([]byte(tokenEntry + "[rate_limit]\ncrashes_burst = " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), "crashes_burst") {
			t.Errorf("crashes_burst = %s: %v", bad, err)
		}
	}
	tf, err := otlp.ParseTokenFile([]byte(tokenEntry + "[rate_limit]\nlogs_per_minute = 0\ncrashes_burst = 2.5\n"))
	if err != nil || tf.RateLimit.LogsPerMinute != 0 || tf.RateLimit.CrashesBurst != 2.5 || tf.RateLimit.LogsBurst != 200 ||
		len(tf.Warnings) != 0 {
		t.Fatalf("valid [rate_limit]: %v %+v %q", err, tf, tf.Warnings)
	}
}

// What detritus defines but lodestone does not act on loads with a warning saying so.
func TestTokenFileWarnsAboutUnusedSettings(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.json"), []byte(`{"type":"object"}`), 0o600)
	tf, err := otlp.ParseTokenFileIn([]byte(tokenEntry+`
[[schema]]
project = "tests"
kind = "log_attributes"
path = "s.json"

[schema_validation]
validate_formats = true
[[schema_validation.resources]]
uri = "urn:x"
path = "s.json"
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tf.Warnings) != 2 || !strings.Contains(tf.Warnings[0], "schema_validation") ||
		!strings.Contains(tf.Warnings[1], `log_attributes schema of project "tests"`) {
		t.Fatalf("warnings: %q", tf.Warnings)
	}
}
