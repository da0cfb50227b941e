package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/doctor"
	"github.com/lodestone-fleet/lodestone/event"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/otlp"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// doctorCmd runs the health checks (package doctor) on the local configuration and data directory, or asks a
// running server for its own (GET /admin/doctor).
type doctorCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// colour forces colours on or off (tests); nil decides from the terminal and NO_COLOR.
	colour *bool
}

const doctorUsage = `Checks an installation in a fixed order and prints one line per check: ok, warn, error, or not_checked (could
not run here; never a pass). Exits 1 only when a check is an error; warnings exit 0.

  (no --server)  check the local configuration (flags, environment, .env, as serve reads them), data
                 directory, database, disk, blob store, FUOTA certificate, OIDC issuer, OTLP token file,
                 backups and retention. Takes serve's flags (--data-dir, --db, --blobs, ...).
  --server URL   ask a running server (GET /admin/doctor, admin role): --token, or --user/--password
                 (default BASIC_AUTH_USER/BASIC_AUTH_PASS)

--json prints {"summary":{"overall","ok","warn","error","not_checked"},
               "checks":[{"name","status","message","details"}]}; every field is always present.
`

func (c *doctorCmd) spec() cmdSpec {
	return cmdSpec{use: "doctor", short: "check an installation (configuration, database, disk, blobs, certificates, backups); --json",
		long: doctorUsage, setup: func(fs *flag.FlagSet) runFunc {
			cfg := defaultConfig()
			wd, _ := os.Getwd()
			var findings []doctor.Finding
			if err := loadEnv(&cfg, c.getenv, wd); err != nil {
				findings = append(findings, doctor.Finding{Setting: "environment", Problem: err.Error(), Error: true})
			}
			cfg.registerFlags(fs)
			asJSON := fs.Bool("json", false, "print the report as JSON")
			server, token := remoteFlags(fs, c.getenv)
			user := fs.String("user", c.getenv("BASIC_AUTH_USER"), "admin `user` for --server (env BASIC_AUTH_USER)")
			pass := fs.String("password", c.getenv("BASIC_AUTH_PASS"), "admin `password` for --server (env BASIC_AUTH_PASS)")
			return func(ctx context.Context, _ []string) error {
				var rep doctor.Report
				if *server != "" {
					r := newRemote(*server, *token, c.getenv, time.Minute)
					if *user != "" {
						r.user = *user
					}
					r.pass = *pass
					if err := r.getJSON(ctx, "/admin/doctor", &rep); err != nil {
						return fmt.Errorf("doctor: %w", err)
					}
				} else {
					if err := cfg.resolve(); err != nil {
						findings = append(findings, doctor.Finding{Setting: "configuration", Problem: err.Error(), Error: true})
						if cfg.DB == "" {
							cfg.DB = filepath.Join(cfg.DataDir, "lodestone.db")
						}
					}
					d, done := localDoctorDeps(ctx, cfg, findings)
					defer done()
					rep = doctor.Run(ctx, doctor.Checks(d))
				}
				var err error
				if *asJSON {
					err = doctor.WriteJSON(c.stdout, rep)
				} else {
					err = doctor.WriteText(c.stdout, rep, c.useColour())
				}
				if err != nil {
					return err
				}
				if rep.Failed() {
					return fmt.Errorf("doctor: %d check(s) failed", rep.Summary.Error)
				}
				return nil
			}
		}}
}

func (c *doctorCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

func (c *doctorCmd) useColour() bool {
	if c.colour != nil {
		return *c.colour
	}
	if c.getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := c.stdout.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// configFindings lists what serve would ignore or warn about, and secrets left weak.
func configFindings(cfg Config) []doctor.Finding {
	var out []doctor.Finding
	for _, s := range cfg.inactive() {
		out = append(out, doctor.Finding{Setting: s.setting, Problem: "has no effect: " + s.instead})
	}
	weak := func(name, v string, min int) {
		if v == "" {
			return
		}
		switch {
		case defaultLike(v):
			out = append(out, doctor.Finding{Setting: name, Problem: "is a default-like value anyone would guess",
				Error: name == "BASIC_AUTH_PASS"})
		case len(v) < min:
			out = append(out, doctor.Finding{Setting: name, Problem: fmt.Sprintf("is shorter than %d characters", min)})
		}
	}
	weak("BASIC_AUTH_PASS", cfg.BasicAuthPass, 12)
	weak("INGEST_API_KEY", cfg.IngestAPIKey, 16)
	weak("ALERT_WEBHOOK_SECRET", cfg.AlertWebhookSecret, 16)
	weak("US_AUTH_PASSWORD", cfg.FUOTAPass, 12)
	weak("DDI_GATEWAY_TOKEN", cfg.DDIGatewayToken, 16)
	if cfg.IngestAPIKey == "" {
		out = append(out, doctor.Finding{Setting: "INGEST_API_KEY",
			Problem: "is not set: anyone who can reach the port can post telemetry"})
	}
	return out
}

func defaultLike(v string) bool {
	switch strings.ToLower(v) {
	case "admin", "password", "changeme", "change-me", "secret", "lodestone", "ferrite", "123456", "12345678",
		"letmein", "test", "default", "passw0rd", "admin123", "password123", "changeit":
		return true
	}
	return false
}

// doctorDeps is what the configuration alone tells the checks; the local command and the server add the
// database and the blob store they have.
func doctorDeps(cfg Config, findings []doctor.Finding) doctor.Deps {
	d := doctor.Deps{
		Config: append(findings, configFindings(cfg)...), ConfigChecked: true,
		DataDir: cfg.DataDir, RetentionDays: cfg.RetentionDays,
		DiskPaths:     map[string]string{"data": cfg.DataDir},
		FUOTAEnabled:  cfg.FUOTAUser != "" || cfg.FUOTAPass != "",
		FUOTACert:     cfg.FUOTACert,
		OIDCIssuer:    cfg.OIDCIssuer,
		OTLPTokenFile: cfg.OTLP.TokensConfig,
		LoadOTLPTokens: func(p string) error {
			_, err := otlp.LoadTokenFile(p)
			return err
		},
		Skip: map[string]string{},
	}
	if d.FUOTACert == "" {
		d.FUOTACert = filepath.Join(cfg.DataDir, "fuota_cert.pem")
	}
	if cfg.KeycloakURL != "" && cfg.KeycloakRealm != "" {
		d.OIDCIssuer = httpapi.KeycloakIssuer(cfg.KeycloakURL, cfg.KeycloakRealm)
	}
	if spec, err := parseDB(cfg.DB); err == nil {
		d.DBName = spec.String()
		if spec.dialect == schema.SQLite {
			d.DiskPaths["database"] = filepath.Dir(spec.target) // the WAL sits beside the file
		}
	}
	if b, err := parseBlobs(cfg.Blobs, cfg.DataDir, cfg.s3Keys()); err == nil && b.s3 == nil {
		d.DiskPaths["blobs"] = b.dir
	}
	return d
}

// localDoctorDeps opens what the local checks need, read-only where it can; done closes it.
func localDoctorDeps(ctx context.Context, cfg Config, findings []doctor.Finding) (doctor.Deps, func()) {
	d := doctorDeps(cfg, findings)
	var closers []func()
	done := func() {
		for _, f := range closers {
			f()
		}
	}
	noDB := "the database could not be opened"
	spec, err := parseDB(cfg.DB)
	switch {
	case err != nil:
		d.DBError = err
	case spec.dialect == schema.Postgres:
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		store, err := openReadOnly(octx, spec.target)
		cancel()
		if err != nil {
			d.DBError = err
			break
		}
		pg := store.(*postgres.DB)
		closers = append(closers, func() { pg.Close() })
		pool := pg.Pool()
		d.Ping, d.Migrations = pg.Ping, pg.MigrationStatus
		d.NewestApplied = func(ctx context.Context) (v int64, err error) {
			err = pool.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version`).Scan(&v)
			return v, err
		}
		d.DBNow = func(ctx context.Context) (t time.Time, err error) {
			err = pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
			return t, err
		}
		d.Replicas = func(ctx context.Context) (n int, err error) {
			var schema string
			if err = pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
				return 0, err
			}
			// Each running replica holds one event-bus listener connection (event.PGBus.Replicas).
			err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
				AND application_name = $1`, event.ListenerName(schema)).Scan(&n)
			return n, err
		}
		d.Settings, d.Audit = pg, pg
		d.Counts = func(ctx context.Context) (lodestone.FleetCounts, error) { return pg.FleetCounts(ctx) }
	default:
		_, err := os.Stat(spec.target)
		if errors.Is(err, fs.ErrNotExist) {
			d.DBAbsent = true
			noDB = "no database yet"
			break
		} else if err != nil {
			d.DBError = err
			break
		}
		st, err := sqlite.Status(ctx, spec.target)
		if err != nil {
			d.DBError = err
			break
		}
		d.Migrations = func(context.Context) (schema.Status, error) { return st, nil }
		if st.Current != st.Latest {
			d.Ping = func(context.Context) error { return nil } // Status read it
			noDB = "the database is not migrated to this binary's version"
			break
		}
		db, err := sqlite.OpenReadOnly(ctx, spec.target)
		if err != nil {
			d.DBError = err
			break
		}
		closers = append(closers, func() { db.Close() })
		r := db.ReadDB()
		d.Ping = db.Ping
		d.NewestApplied = func(ctx context.Context) (v int64, err error) {
			err = r.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version`).Scan(&v)
			return v, err
		}
		d.Settings, d.Audit = db, db
		d.Counts = func(ctx context.Context) (lodestone.FleetCounts, error) { return countRows(ctx, r) }
	}
	if d.Settings == nil {
		d.Skip["backup"], d.Skip["retention"], d.Skip["audit_log"] = noDB, noDB, noDB
	}
	if b, err := parseBlobs(cfg.Blobs, cfg.DataDir, cfg.s3Keys()); err != nil {
		d.Skip["blob_store"] = "--blobs: " + err.Error()
	} else if _, serr := os.Stat(b.dir); b.s3 == nil && errors.Is(serr, fs.ErrNotExist) && d.DBAbsent {
		d.Skip["blob_store"] = "the blob directory does not exist yet; serve creates it"
	} else if blobs, err := openBlobs(ctx, cfg.Blobs, cfg.DataDir, cfg.s3Keys(), nil); err != nil {
		d.Blobs = failingBlobs{err}
	} else {
		d.Blobs = blobs
		if c, ok := blobs.(io.Closer); ok {
			closers = append(closers, func() { c.Close() })
		}
	}
	d.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	return d, done
}

// countRows counts telemetry rows of a read-only SQLite database, which has no write-side counters.
func countRows(ctx context.Context, r *sql.DB) (c lodestone.FleetCounts, err error) {
	err = r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM faults), (SELECT count(*) FROM metrics),
		(SELECT count(*) FROM reboots)`).Scan(&c.Faults, &c.Metrics, &c.Reboots)
	if err != nil {
		return c, err
	}
	// Sealed metric points (migration 00170; an older database has no such table).
	var sealed int64
	if r.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM metric_blocks`).Scan(&sealed) == nil {
		c.Metrics += sealed
	}
	return c, nil
}

// failingBlobs is a blob store that could not be opened: every call reports why, so the check names it.
type failingBlobs struct{ err error }

func (f failingBlobs) Put(context.Context, io.Reader, int64) (lodestone.BlobRef, bool, error) {
	return lodestone.BlobRef{}, false, f.err
}
func (f failingBlobs) Open(context.Context, string) (lodestone.Blob, error) { return nil, f.err }
func (f failingBlobs) Stat(context.Context, string) (lodestone.BlobRef, error) {
	return lodestone.BlobRef{}, f.err
}
func (f failingBlobs) Delete(context.Context, string) error { return f.err }
func (f failingBlobs) Walk(context.Context, func(lodestone.BlobRef) error) error {
	return f.err
}

// doctorReport is GET /admin/doctor's check run: the configuration and the parts this server has open.
func (s *server) doctorReport(blobs lodestone.BlobStore, counts lodestone.FleetCounter) func(context.Context) doctor.Report {
	d := doctorDeps(s.cfg, nil)
	d.Ping, d.Blobs, d.Settings = s.db.Ping, blobs, s.db.Store
	d.Audit, _ = s.db.Store.(lodestone.AuditStore)
	if m, ok := s.db.Store.(interface {
		MigrationStatus(context.Context) (schema.Status, error)
	}); ok {
		d.Migrations = m.MigrationStatus
	}
	if counts != nil {
		d.Counts = counts.FleetCounts
	}
	if s.db.pg != nil {
		delete(d.DiskPaths, "database")
		pool := s.db.pg.Pool()
		d.NewestApplied = func(ctx context.Context) (v int64, err error) {
			err = pool.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version`).Scan(&v)
			return v, err
		}
		d.DBNow = func(ctx context.Context) (t time.Time, err error) {
			err = pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
			return t, err
		}
		if b, ok := s.bus.(*event.PGBus); ok {
			d.Replicas = b.Replicas
		}
	}
	if s.elector != nil && s.db.pg != nil {
		d.IsLeader = s.elector.IsLeader
	}
	return func(ctx context.Context) doctor.Report { return doctor.Run(ctx, doctor.Checks(d)) }
}

// recordingBackup notes each backup that was read to its end in the settings table, for doctor's backup check.
type recordingBackup struct {
	lodestone.BackupService
	settings lodestone.Settings
}

func recordBackups(b lodestone.BackupService, s lodestone.Settings) lodestone.BackupService {
	if b == nil || s == nil {
		return b
	}
	return recordingBackup{b, s}
}

func (b recordingBackup) Backup(ctx context.Context) (*lodestone.Snapshot, error) {
	snap, err := b.BackupService.Backup(ctx)
	if err != nil {
		return nil, err
	}
	snap.ReadCloser = &recordAtEOF{ReadCloser: snap.ReadCloser, ctx: context.WithoutCancel(ctx), b: b}
	return snap, nil
}

// recordAtEOF records the backup when its reader reaches the end: a download cut short is no backup.
type recordAtEOF struct {
	io.ReadCloser
	ctx  context.Context
	b    recordingBackup
	done bool
}

func (r *recordAtEOF) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF && !r.done {
		r.done = true
		doctor.RecordBackup(r.ctx, r.b.settings, time.Now()) // a lost note only makes doctor warn
	}
	return n, err
}

// recordLocalBackup notes a backup that 'lodestone backup' took of the local database, for doctor's backup check.
// The command reads through a read-only store, so the note is written on its own short connection; failing to
// write it only makes doctor warn.
func recordLocalBackup(ctx context.Context, spec dbSpec, taken time.Time) error {
	key, value := doctor.BackupSetting(taken)
	if spec.dialect == schema.Postgres {
		db, err := postgres.Open(ctx, spec.target, postgres.Options{NoMigrate: true, MaxConns: 1})
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.SetSettingIfAbsent(ctx, key, value)
		return err
	}
	db, err := sql.Open(sqlite.DriverName, sqlite.URI(spec.target, nil, "busy_timeout(10000)"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
		key, value)
	return err
}
