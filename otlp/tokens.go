package otlp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/argon2"
)

// Token is one [[token]] entry of detritus' token file.
type Token struct {
	ID           string
	Project      string
	SourcePrefix string // matched against "<project>/<install_id>"
	hash         phc
	apiID        int64 // store id of an API-created token; 0 for the token file's
}

// Permits reports whether the token may write the source (project, device), by detritus' rule: same project and
// "<project>/<device>" starts with the source prefix.
func (t *Token) Permits(project, device string) bool {
	if subtle.ConstantTimeCompare([]byte(project), []byte(t.Project)) != 1 {
		return false
	}
	return strings.HasPrefix(project+"/"+device, t.SourcePrefix)
}

// RateLimits are the [rate_limit] table; units are per minute and bucket sizes.
type RateLimits struct {
	LogsPerMinute    float64 `toml:"logs_per_minute"`
	LogsBurst        float64 `toml:"logs_burst"`
	CrashesPerMinute float64 `toml:"crashes_per_minute"`
	CrashesBurst     float64 `toml:"crashes_burst"`
}

// DefaultRateLimits are detritus' defaults.
var DefaultRateLimits = RateLimits{LogsPerMinute: 1000, LogsBurst: 200, CrashesPerMinute: 30, CrashesBurst: 5}

// TokenFile is a loaded token file.
type TokenFile struct {
	Tokens    []*Token
	RateLimit RateLimits
	Schemas   *Schemas // [[schema]] entries; nil or empty accepts every payload
	// Warnings name what the file sets that lodestone accepts but does not act on; the caller logs them.
	Warnings []string
}

type tokenFileTOML struct {
	Token []struct {
		ID           *string `toml:"id"`
		Secret       *string `toml:"secret"`
		Project      *string `toml:"project"`
		SourcePrefix *string `toml:"source_prefix"`
	} `toml:"token"`
	RateLimit struct {
		LogsPerMinute    *float64 `toml:"logs_per_minute"`
		LogsBurst        *float64 `toml:"logs_burst"`
		CrashesPerMinute *float64 `toml:"crashes_per_minute"`
		CrashesBurst     *float64 `toml:"crashes_burst"`
	} `toml:"rate_limit"`
	Schema []schemaEntry `toml:"schema"`
}

// unsupportedTables are detritus' tables that lodestone reads past: loading warns about them instead of failing.
var unsupportedTables = map[string]string{
	"schema_validation": "[schema_validation] (detritus 0.2) is not supported: format validation and $ref resources stay as lodestone's defaults",
}

// LoadTokenFile reads detritus' TOML token file. A file without tokens, a missing field, a secret that is not an
// Argon2 PHC string or a key lodestone does not know is an error naming the token or the key: detritus ignores
// unknown keys, so a misspelt rate limit there silently keeps its default.
func LoadTokenFile(path string) (*TokenFile, error) {
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("token config I/O error: %w", err)
	}
	return ParseTokenFileIn(b, filepath.Dir(path))
}

// ParseTokenFile parses the contents of a token file; [[schema]] paths are relative to the working directory.
func ParseTokenFile(b []byte) (*TokenFile, error) { return ParseTokenFileIn(b, ".") }

// ParseTokenFileIn parses the contents of a token file whose [[schema]] paths are relative to dir.
func ParseTokenFileIn(b []byte, dir string) (*TokenFile, error) {
	var raw tokenFileTOML
	md, err := toml.Decode(string(b), &raw)
	if err != nil {
		return nil, fmt.Errorf("token config: %w", err)
	}
	var warnings []string
	for _, k := range md.Undecoded() {
		if msg, ok := unsupportedTables[k[0]]; ok {
			if len(k) == 1 {
				warnings = append(warnings, "token config: "+msg)
			}
			continue
		}
		return nil, fmt.Errorf("token config: unknown key %q (known: [[token]] id, secret, project, source_prefix; "+
			"[rate_limit] logs_per_minute, logs_burst, crashes_per_minute, crashes_burst; [[schema]] project, kind, path)",
			k.String())
	}
	if len(raw.Token) == 0 {
		return nil, errors.New("token config contains no tokens")
	}
	tf := &TokenFile{RateLimit: DefaultRateLimits, Warnings: warnings}
	seen := map[string]bool{}
	for i, t := range raw.Token {
		if t.ID == nil || t.Secret == nil || t.Project == nil || t.SourcePrefix == nil {
			return nil, fmt.Errorf("token config: token %d needs id, secret, project and source_prefix", i+1)
		}
		if seen[*t.ID] {
			return nil, fmt.Errorf("token config: duplicate token id %q", *t.ID)
		}
		seen[*t.ID] = true
		h, err := parsePHC(*t.Secret)
		if err != nil {
			return nil, fmt.Errorf("token `%s` has an invalid Argon2 hash: %w", *t.ID, err)
		}
		tf.Tokens = append(tf.Tokens, &Token{ID: *t.ID, Project: *t.Project, SourcePrefix: *t.SourcePrefix, hash: h})
	}
	projects := map[string]bool{}
	for _, t := range tf.Tokens {
		projects[t.Project] = true
	}
	if tf.Schemas, err = compileSchemas(raw.Schema, dir, projects); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		key string
		v   *float64
		dst *float64
	}{
		{"logs_per_minute", raw.RateLimit.LogsPerMinute, &tf.RateLimit.LogsPerMinute},
		{"logs_burst", raw.RateLimit.LogsBurst, &tf.RateLimit.LogsBurst},
		{"crashes_per_minute", raw.RateLimit.CrashesPerMinute, &tf.RateLimit.CrashesPerMinute},
		{"crashes_burst", raw.RateLimit.CrashesBurst, &tf.RateLimit.CrashesBurst},
	} {
		if r.v == nil {
			continue
		}
		if !(*r.v >= 0) || math.IsInf(*r.v, 1) {
			return nil, fmt.Errorf("token config: [rate_limit] %s must be a finite number, 0 or more, got %v", r.key, *r.v)
		}
		*r.dst = *r.v
	}
	for _, k := range tf.Schemas.unapplied() {
		tf.Warnings = append(tf.Warnings, fmt.Sprintf("token config: the log_attributes schema of project %q is "+
			"compiled but not applied: log records are not validated yet", k.project))
	}
	return tf, nil
}

// phc is a parsed Argon2 PHC string.
type phc struct {
	id        bool // argon2id, else argon2i
	m, t      uint32
	p         uint8
	salt, sum []byte
}

func parsePHC(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, errors.New("not a PHC string")
	}
	switch parts[1] {
	case "argon2id":
		h.id = true
	case "argon2i":
	default:
		return h, fmt.Errorf("algorithm %q is not supported (argon2id or argon2i)", parts[1])
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("version %q is not supported (v=19)", parts[2])
	}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return h, fmt.Errorf("parameter %q", kv)
		}
		switch k {
		case "m":
			h.m = uint32(n)
		case "t":
			h.t = uint32(n)
		case "p":
			if n > 255 {
				return h, fmt.Errorf("parameter %q", kv)
			}
			h.p = uint8(n)
		default:
			return h, fmt.Errorf("unknown parameter %q", k)
		}
	}
	if h.m == 0 || h.t == 0 || h.p == 0 || h.m > 4<<20 {
		return h, errors.New("parameters m, t and p must be set (m at most 4 GiB)")
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return h, errors.New("salt is not base64")
	}
	if h.sum, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.sum) < 4 {
		return h, errors.New("hash is not base64")
	}
	return h, nil
}

func (h phc) verify(secret string) bool {
	var sum []byte
	if h.id {
		sum = argon2.IDKey([]byte(secret), h.salt, h.t, h.m, h.p, uint32(len(h.sum)))
	} else {
		sum = argon2.Key([]byte(secret), h.salt, h.t, h.m, h.p, uint32(len(h.sum)))
	}
	return subtle.ConstantTimeCompare(sum, h.sum) == 1
}

// HashToken returns a PHC string for secret with detritus' parameters and a random salt, like detritusd
// hash-token.
func HashToken(secret string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(secret), salt, 2, 19456, 1, 32)
	return "$argon2id$v=19$m=19456,t=2,p=1$" + base64.RawStdEncoding.EncodeToString(salt) + "$" +
		base64.RawStdEncoding.EncodeToString(sum)
}
