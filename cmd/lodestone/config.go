package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/netguard"
)

// Config is everything serve needs. Precedence: defaults < .env < environment < flags. ferrite-server's flag and
// variable names are accepted so an existing deployment switches over unchanged.
type Config struct {
	HTTP        string
	DataDir     string
	DB          string
	ELFDir      string
	FirmwareDir string
	Blobs       string // blob store: empty for <data-dir>/blobs, file:///path or s3://bucket/prefix?...
	StaticDir   string
	Addr2line   string

	MaxBody           int64
	SQLiteSync        string
	AttributionWindow time.Duration
	ShutdownTimeout   time.Duration
	LogLevel          string
	LogFormat         string

	IngestAPIKey        string
	ChunkEncryptionKey  string
	RetentionDays       int
	AuditRetentionDays  int // days of audit log to keep; 0 keeps everything
	BasicAuthUser       string
	BasicAuthPass       string
	BasicAuthUsers      string
	CORSOrigin          string
	RateLimitRPS        float64
	AlertWebhookURL     string        // one URL, or several separated by commas
	AlertWebhookSecret  string        // HMAC-SHA256 key for the alert signature header
	AlertRetry          time.Duration // wait before the first retry of a failed alert; doubles up to an hour
	AlertOfflineMinutes int
	OfflineAfter        time.Duration // overrides AlertOfflineMinutes when set
	JobsInterval        time.Duration
	LeaderRetry         time.Duration
	KeycloakURL         string
	KeycloakRealm       string
	KeycloakClientID    string
	OIDCIssuer          string
	OIDCClientID        string
	OIDCRoleClaim       string
	OIDCClientSecret    string        // the console's authorization code sign-in (confidential clients)
	OIDCRedirectURL     string        // the console's callback as registered with the provider; empty: derived
	ConsoleIdle         time.Duration // a console session unused this long ends
	ConsoleMaxAge       time.Duration // a console session ends this long after sign-in
	TrustedProxies      string
	PublicEvents        bool
	PublicMetrics       bool

	AWSAccessKeyID     string // S3 credentials for --blobs s3://
	AWSSecretAccessKey string

	OTASigningKey string // ed25519 seed for signed firmware manifests
	FUOTAAddr     string // ESP32 FUOTA listener; runs when FUOTAUser/FUOTAPass are set
	FUOTAUser     string
	FUOTAPass     string
	FUOTACert     string
	FUOTAKey      string
	OTLP          OTLPConfig // the OTLP log and crash receiver (otlp.go)

	DDITenant       string // hawkBit DDI: the tenant answered (default DEFAULT)
	DDIGatewayToken string // hawkBit DDI gateway token; unset: none accepted
	DDIAnonymous    bool   // hawkBit DDI without credentials
	DDIPollSeconds  int    // config.polling.sleep told to DDI controllers; 0: 300

	// Every listener (main API, OTLP gRPC and HTTP, FUOTA) applies these: timeouts for slow and idle clients, and
	// caps on open connections per listener and per client address, so a flood on one port cannot take the
	// process's descriptors from the others.
	Timeouts        netguard.Timeouts
	MaxConns        int // per listener; 0: no limit
	MaxConnsPerAddr int // per client address and listener; 0: no limit

	// notes are what loading the environment accepted but does not act on (RUST_LOG module filters, .env keys
	// that are not settings); inactive reports them with the flags that have no effect.
	notes []inactiveSetting
	// Open event and log streams (SSE), per server and per credential; 0: no limit.
	MaxStreams              int
	MaxStreamsPerCredential int
}

func defaultConfig() Config {
	return Config{
		HTTP:                "0.0.0.0:4000",
		DataDir:             "lodestone-data",
		MaxBody:             2 << 20,
		SQLiteSync:          "full",
		AttributionWindow:   30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		LogLevel:            "info",
		LogFormat:           "text",
		RetentionDays:       90,
		AuditRetentionDays:  365,
		AlertOfflineMinutes: 10,
		JobsInterval:        time.Minute,
		ConsoleIdle:         time.Hour,
		ConsoleMaxAge:       12 * time.Hour,
		LeaderRetry:         5 * time.Second,
		AlertRetry:          10 * time.Second,
		FUOTAAddr:           "0.0.0.0:50000",
		OTLP:                defaultOTLPConfig(),
		Timeouts:            netguard.Timeouts{}.WithDefaults(),
		// Four listeners at most: main API, OTLP gRPC, OTLP HTTP, FUOTA.
		MaxConns:        netguard.DefaultMaxConns(4),
		MaxConnsPerAddr: netguard.DefaultMaxConnsPerAddr,

		MaxStreams:              httpapi.DefaultMaxStreams,
		MaxStreamsPerCredential: httpapi.DefaultMaxStreamsPerCredential,
	}
}

func count(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a whole number, 0 for no limit, got %q", v)
		}
		*p(c) = n
		return nil
	}
}

// envVar binds one environment variable to a config field.
type envVar struct {
	name string
	set  func(c *Config, v string) error
	help string
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		*p(c) = b
		return nil
	}
}

var envVars = []envVar{
	{"LODESTONE_HTTP", str(func(c *Config) *string { return &c.HTTP }), "listen address (ip:port)"},
	{"LODESTONE_DATA_DIR", str(func(c *Config) *string { return &c.DataDir }), "directory for the database and files"},
	{"LODESTONE_DB", str(func(c *Config) *string { return &c.DB }), "database: a SQLite file path, sqlite://path or postgres://user@host/db"},
	{"LODESTONE_BLOBS", str(func(c *Config) *string { return &c.Blobs }), "blob store: file:///path or s3://bucket/prefix?endpoint=host:port&region=&secure=&create="},
	{"AWS_ACCESS_KEY_ID", str(func(c *Config) *string { return &c.AWSAccessKeyID }), "S3 access key for --blobs s3://"},
	{"AWS_SECRET_ACCESS_KEY", str(func(c *Config) *string { return &c.AWSSecretAccessKey }), "S3 secret key for --blobs s3://"},
	{"INGEST_API_KEY", str(func(c *Config) *string { return &c.IngestAPIKey }), "key devices send as X-API-Key; unset leaves ingest open"},
	{"CHUNK_ENCRYPTION_KEY", str(func(c *Config) *string { return &c.ChunkEncryptionKey }), "AES-128 key, 32 hex chars, for encrypted chunks"},
	{"RETENTION_DAYS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a whole number of days, got %q", v)
		}
		c.RetentionDays = n
		return nil
	}, "days of telemetry to keep; 0 keeps everything (default 90)"},
	{"AUDIT_RETENTION_DAYS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a whole number of days, got %q", v)
		}
		c.AuditRetentionDays = n
		return nil
	}, "days of audit log to keep; 0 keeps everything (default 365)"},
	{"BASIC_AUTH_USER", str(func(c *Config) *string { return &c.BasicAuthUser }), "admin user name (default admin)"},
	{"BASIC_AUTH_PASS", str(func(c *Config) *string { return &c.BasicAuthPass }), "admin password; unset: generated on first start and printed once"},
	{"BASIC_AUTH_USERS", str(func(c *Config) *string { return &c.BasicAuthUsers }), "extra users u:p:role,... (role admin, provisioner or viewer)"},
	{"CORS_ORIGIN", str(func(c *Config) *string { return &c.CORSOrigin }), "browser origin allowed to call the API; unset sends no CORS headers"},
	{"RATE_LIMIT_RPS", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("must be a number, got %q", v)
		}
		c.RateLimitRPS = f
		return nil
	}, "ingest requests per second per client IP and per device key; unset: unlimited"},
	{"ALERT_WEBHOOK_URL", str(func(c *Config) *string { return &c.AlertWebhookURL }), "webhook URL(s), comma-separated, of the default alert rules: faults, offline/online, halted campaigns, crash regressions (Slack and Discord compatible)"},
	{"ALERT_WEBHOOK_SECRET", str(func(c *Config) *string { return &c.AlertWebhookSecret }), "key that signs alerts: X-Lodestone-Signature: sha256=HMAC(key, timestamp.body)"},
	{"ALERT_OFFLINE_MINUTES", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("must be a positive number of minutes, got %q", v)
		}
		c.AlertOfflineMinutes = n
		return nil
	}, "minutes without contact before a device is marked offline"},
	{"OTA_SIGNING_KEY", str(func(c *Config) *string { return &c.OTASigningKey }), "ed25519 seed (32 bytes, hex or base64) that signs firmware manifests"},
	{"US_AUTH_USERNAME", str(func(c *Config) *string { return &c.FUOTAUser }), "ESP32 FUOTA listener user; with US_AUTH_PASSWORD starts the listener"},
	{"US_AUTH_PASSWORD", str(func(c *Config) *string { return &c.FUOTAPass }), "ESP32 FUOTA listener password"},
	{"US_SERVER_PORT", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("must be a port number, got %q", v)
		}
		c.FUOTAAddr = "0.0.0.0:" + v
		return nil
	}, "ESP32 FUOTA listener port (default 50000)"},
	{"FUOTA_TLS_CERT", str(func(c *Config) *string { return &c.FUOTACert }), "FUOTA certificate PEM; unset: self-signed, generated into the data directory"},
	{"FUOTA_TLS_KEY", str(func(c *Config) *string { return &c.FUOTAKey }), "FUOTA private key PEM"},
	{"KEYCLOAK_URL", str(func(c *Config) *string { return &c.KeycloakURL }), "Keycloak base URL; with KEYCLOAK_REALM and KEYCLOAK_CLIENT_ID (all three or none) users sign in with its JWTs"},
	{"KEYCLOAK_REALM", str(func(c *Config) *string { return &c.KeycloakRealm }), "Keycloak realm"},
	{"KEYCLOAK_CLIENT_ID", str(func(c *Config) *string { return &c.KeycloakClientID }), "Keycloak client id a JWT must name"},
	{"OIDC_ISSUER", str(func(c *Config) *string { return &c.OIDCIssuer }), "OpenID provider issuer URL: users sign in with its JWTs instead of Basic; needs OIDC_CLIENT_ID"},
	{"OIDC_CLIENT_ID", str(func(c *Config) *string { return &c.OIDCClientID }), "client id a JWT must name (aud, azp or client_id)"},
	{"OIDC_ROLE_CLAIM", str(func(c *Config) *string { return &c.OIDCRoleClaim }), "dotted claim path holding roles (default roles; realm_access.roles for Keycloak)"},
	{"OIDC_CLIENT_SECRET", str(func(c *Config) *string { return &c.OIDCClientSecret }), "client secret for the console's sign-in with the provider (authorization code + PKCE); unset for a public client"},
	{"OIDC_REDIRECT_URL", str(func(c *Config) *string { return &c.OIDCRedirectURL }), "the console's callback URL registered with the provider (https://host/ui/oidc/callback); unset: derived from each request"},
	{"TRUSTED_PROXIES", str(func(c *Config) *string { return &c.TrustedProxies }), "proxy addresses/CIDRs whose X-Forwarded-For is believed"},
	{"PUBLIC_EVENTS", boolean(func(c *Config) *bool { return &c.PublicEvents }), "true: /events/stream needs no credentials"},
	{"PUBLIC_METRICS", boolean(func(c *Config) *bool { return &c.PublicMetrics }), "true: /metrics/prometheus needs no credentials"},
	{"DDI_TENANT", str(func(c *Config) *string { return &c.DDITenant }), "hawkBit DDI tenant this server answers (default DEFAULT)"},
	{"DDI_GATEWAY_TOKEN", str(func(c *Config) *string { return &c.DDIGatewayToken }), "hawkBit DDI gateway token (Authorization: GatewayToken ...) for every controller; unset: none"},
	{"DDI_ANONYMOUS", boolean(func(c *Config) *bool { return &c.DDIAnonymous }), "true: hawkBit DDI controllers need no credentials"},
	{"DDI_POLL_SECONDS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 86400 {
			return fmt.Errorf("must be 1-86400 seconds, got %q", v)
		}
		c.DDIPollSeconds = n
		return nil
	}, "poll interval told to hawkBit DDI controllers (default 300)"},
	{"LODESTONE_MAX_CONNS", count(func(c *Config) *int { return &c.MaxConns }), "open connections per listener; 0: no limit (default: a share of the open-file limit)"},
	{"LODESTONE_MAX_CONNS_PER_ADDR", count(func(c *Config) *int { return &c.MaxConnsPerAddr }), "open connections per client address and listener; 0: no limit (default 256; TRUSTED_PROXIES are exempt)"},
	{"LODESTONE_MAX_STREAMS", count(func(c *Config) *int { return &c.MaxStreams }), "open event and log streams (SSE) on this server; 0: no limit (default 1024)"},
	{"LODESTONE_MAX_STREAMS_PER_CREDENTIAL", count(func(c *Config) *int { return &c.MaxStreamsPerCredential }), "open event and log streams per user, token or (public events) client address; 0: no limit (default 16)"},
	// RUST_LOG comes first so that LODESTONE_LOG_LEVEL, lodestone's own name, wins when both are set.
	{"RUST_LOG", rustLog, "ferrite's log filter: its level is used; module filters are ignored with a warning"},
	{"LODESTONE_LOG_LEVEL", str(func(c *Config) *string { return &c.LogLevel }), "debug, info, warn or error (as --log-level)"},
}

// loadEnv applies a .env file (the working directory's or a parent's) and then the process environment. Empty
// values count as unset, as in ferrite.
func loadEnv(c *Config, getenv func(string) string, dotenvStart string) error {
	file, err := findDotenv(dotenvStart)
	if err != nil {
		return err
	}
	var fileVars map[string]string
	if file != "" {
		if fileVars, err = godotenv.Read(file); err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
	}
	var unknown []string
	for k := range fileVars {
		if !slices.ContainsFunc(envVars, func(e envVar) bool { return e.name == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		// A warning, not an error: ferrite's .env also feeds its gateway and Docker image, so it may hold
		// variables for other programs.
		slices.Sort(unknown)
		c.notes = append(c.notes, inactiveSetting{file + ": " + strings.Join(unknown, ", "),
			"not lodestone settings; 'lodestone help serve' lists them"})
	}
	for _, e := range envVars {
		v := getenv(e.name)
		if v == "" {
			v = fileVars[e.name]
		}
		if v == "" {
			continue
		}
		if err := e.set(c, v); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return nil
}

func findDotenv(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	for {
		p := filepath.Join(dir, ".env")
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("look for .env: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", nil
		}
		dir = parent
	}
}

// registerFlags binds flags to c; their defaults are c's current values, so a flag wins only when given.
func (c *Config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTP, "http", c.HTTP, "listen address `ip:port` (env LODESTONE_HTTP)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`directory` for the database, the blob store and the FUOTA certificate (env LODESTONE_DATA_DIR)")
	fs.StringVar(&c.DB, "db", c.DB, "database: a SQLite `file`, sqlite://path, or postgres://user:pass@host:5432/db for several replicas; default <data-dir>/lodestone.db (env LODESTONE_DB)")
	fs.StringVar(&c.ELFDir, "elf-dir", c.ELFDir, "ferrite's ELF `directory`: accepted with a warning; ELF files are kept in the blob store (--blobs)")
	fs.StringVar(&c.FirmwareDir, "firmware-dir", c.FirmwareDir, "ferrite's firmware `directory`: accepted with a warning; firmware is kept in the blob store (--blobs)")
	fs.StringVar(&c.Blobs, "blobs", c.Blobs, "blob store `URL`: file:///path or s3://bucket/prefix?endpoint=host:port; default <data-dir>/blobs (env LODESTONE_BLOBS)")
	fs.StringVar(&c.FUOTAAddr, "fuota-addr", c.FUOTAAddr, "ESP32 FUOTA listener `ip:port`, HTTPS, started when US_AUTH_USERNAME and US_AUTH_PASSWORD are set")
	fs.StringVar(&c.StaticDir, "static-dir", c.StaticDir, "ferrite's dashboard `directory`: accepted with a warning; lodestone serves its own console at /ui/")
	fs.StringVar(&c.Addr2line, "addr2line", c.Addr2line, "ferrite's addr2line `path`: accepted with a warning; symbolication is built in")
	fs.Int64Var(&c.MaxBody, "max-body", c.MaxBody, "largest ingest body in `bytes`")
	fs.StringVar(&c.SQLiteSync, "sqlite-sync", c.SQLiteSync, "SQLite synchronous `mode`: full survives power loss, normal survives a crash")
	fs.DurationVar(&c.AttributionWindow, "attribution-window", c.AttributionWindow, "how long headerless chunks from one client address belong to the device it named last; 0 disables")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bounds the whole shutdown: in-flight requests, jobs, queued writes, closing the database")
	fs.DurationVar(&c.OfflineAfter, "offline-after", c.OfflineAfter, "silence after which a device is marked offline; overrides ALERT_OFFLINE_MINUTES")
	fs.DurationVar(&c.ConsoleIdle, "console-session-idle", c.ConsoleIdle, "a console session unused this long ends")
	fs.DurationVar(&c.ConsoleMaxAge, "console-session-max", c.ConsoleMaxAge, "a console session ends this long after sign-in, however it is used")
	fs.DurationVar(&c.JobsInterval, "jobs-interval", c.JobsInterval, "how often periodic jobs (offline detection) run, on the one replica that leads them")
	fs.DurationVar(&c.AlertRetry, "alert-retry", c.AlertRetry, "wait before retrying a failed alert webhook; doubles after each failure, up to an hour")
	fs.DurationVar(&c.LeaderRetry, "leader-retry", c.LeaderRetry, "with PostgreSQL: how often a replica tries to take over the periodic jobs")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "open connections per listener (API, OTLP gRPC, OTLP HTTP, FUOTA); beyond it new ones are closed at once; 0: no limit; default: a quarter of the open-file limit each, after a reserve (env LODESTONE_MAX_CONNS)")
	fs.IntVar(&c.MaxConnsPerAddr, "max-conns-per-addr", c.MaxConnsPerAddr, "open connections per client IPv4 address or IPv6 /64 on each listener; 0: no limit; TRUSTED_PROXIES are exempt (env LODESTONE_MAX_CONNS_PER_ADDR)")
	fs.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "open event and log streams (SSE) on this server; beyond it 503; 0: no limit (env LODESTONE_MAX_STREAMS)")
	fs.IntVar(&c.MaxStreamsPerCredential, "max-streams-per-credential", c.MaxStreamsPerCredential, "open event and log streams per user, token or (public events) client address; beyond it 429; 0: no limit (env LODESTONE_MAX_STREAMS_PER_CREDENTIAL)")
	fs.DurationVar(&c.Timeouts.ReadHeader, "read-header-timeout", c.Timeouts.ReadHeader, "every listener: time for a request's headers to arrive")
	fs.DurationVar(&c.Timeouts.Read, "read-timeout", c.Timeouts.Read, "every listener: time for a whole request, body included (per stream on HTTP/2)")
	fs.DurationVar(&c.Timeouts.Write, "write-timeout", c.Timeouts.Write, "every listener: time to write an answer (event streams lift it)")
	fs.DurationVar(&c.Timeouts.Idle, "idle-timeout", c.Timeouts.Idle, "every listener: how long an idle keep-alive or HTTP/2 connection stays open")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn, error (env LODESTONE_LOG_LEVEL, or ferrite's RUST_LOG)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")
	c.OTLP.registerFlags(fs)
}

// streamLimits is the API's stream caps (httpapi.Config.Streams); 0 here means no limit, there the default.
func (c *Config) streamLimits() httpapi.StreamLimits {
	unlimited := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	return httpapi.StreamLimits{Total: unlimited(c.MaxStreams), PerCredential: unlimited(c.MaxStreamsPerCredential)}
}

// resolve fills derived paths and checks values.
func (c *Config) resolve() error {
	if c.DB == "" {
		c.DB = filepath.Join(c.DataDir, "lodestone.db")
	}
	if _, err := parseDB(c.DB); err != nil {
		return err
	}
	if !isPostgresURL(c.DB) {
		c.DB = strings.TrimPrefix(c.DB, "sqlite://")
	}
	if err := c.checkSignIn(); err != nil {
		return err
	}
	switch strings.ToLower(c.SQLiteSync) {
	case "full", "normal":
		c.SQLiteSync = strings.ToUpper(c.SQLiteSync)
	default:
		return fmt.Errorf("--sqlite-sync must be full or normal, got %q", c.SQLiteSync)
	}
	if _, err := parseBlobs(c.Blobs, c.DataDir, c.s3Keys()); err != nil {
		return err
	}
	if c.ConsoleIdle <= 0 || c.ConsoleMaxAge <= 0 {
		return fmt.Errorf("--console-session-idle and --console-session-max must be positive")
	}
	if c.JobsInterval <= 0 || c.LeaderRetry <= 0 || c.OfflineAfter < 0 {
		return fmt.Errorf("--jobs-interval and --leader-retry must be positive, --offline-after not negative")
	}
	if c.MaxBody <= 0 {
		return fmt.Errorf("--max-body must be positive")
	}
	if c.MaxConns < 0 || c.MaxConnsPerAddr < 0 {
		return fmt.Errorf("--max-conns and --max-conns-per-addr must not be negative (0: no limit)")
	}
	if c.MaxStreams < 0 || c.MaxStreamsPerCredential < 0 {
		return fmt.Errorf("--max-streams and --max-streams-per-credential must not be negative (0: no limit)")
	}
	if c.Timeouts.ReadHeader <= 0 || c.Timeouts.Read <= 0 || c.Timeouts.Write <= 0 || c.Timeouts.Idle <= 0 {
		return fmt.Errorf("--read-header-timeout, --read-timeout, --write-timeout and --idle-timeout must be positive")
	}
	return nil
}

func (c *Config) s3Keys() s3Keys {
	return s3Keys{AccessKey: c.AWSAccessKeyID, SecretKey: c.AWSSecretAccessKey}
}
