package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// Finding is one configuration problem: Error for settings serve refuses, otherwise a warning.
type Finding struct {
	Setting string `json:"setting"`
	Problem string `json:"problem"`
	Error   bool   `json:"error"`
}

// Deps is what the checks look at. A nil or empty field makes its check not_checked, with the reason given in
// the matching *Reason field when the caller knows it (the database could not be opened, FUOTA is off, ...).
type Deps struct {
	Config []Finding // configuration findings; nil with ConfigChecked false: not checked
	// ConfigChecked says the configuration was looked at, so no findings means ok.
	ConfigChecked bool

	DataDir string // the data directory: must be a writable directory (or creatable)

	// Database: Ping reaches it; DBError, when set, is why it could not even be opened.
	DBName     string
	DBError    error
	Ping       func(ctx context.Context) error
	Migrations func(ctx context.Context) (schema.Status, error)
	// NewestApplied is the newest version recorded in the database, known to this binary or not: newer than
	// Status.Latest means the database belongs to a newer lodestone. Nil: not compared.
	NewestApplied func(ctx context.Context) (int64, error)

	// Disk: directories whose free space is checked, by role ("data", "database", "wal").
	DiskPaths map[string]string

	Blobs lodestone.BlobStore

	FUOTAEnabled bool
	FUOTACert    string // the certificate PEM file the FUOTA listener uses

	OIDCIssuer string
	HTTPClient *http.Client

	OTLPTokenFile  string
	LoadOTLPTokens func(path string) error

	// PostgreSQL only: the database's clock, and the replicas sharing it.
	DBNow    func(ctx context.Context) (time.Time, error)
	Replicas func(ctx context.Context) (int, error)
	// IsLeader, in a running server, says whether this replica runs the periodic jobs.
	IsLeader func() bool

	Settings lodestone.Settings // where the last backup is recorded

	// Audit is the audit log whose hash chain the audit_log check verifies; nil: not_checked.
	Audit lodestone.AuditStore

	RetentionDays int
	Counts        func(ctx context.Context) (lodestone.FleetCounts, error)

	Now func() time.Time

	// DBAbsent: the SQLite file does not exist yet (serve creates it), a warning rather than a fault.
	DBAbsent bool
	// Skip gives, by check name, why a check cannot run here; it is then not_checked with that reason.
	Skip map[string]string
}

// Thresholds.
const (
	diskWarnBytes   = 5 << 30   // below 5 GiB free: warn
	diskErrorBytes  = 256 << 20 // below 256 MiB free: error; SQLite cannot even checkpoint
	diskWarnPercent = 10
	certWarnDays    = 30
	skewWarn        = 2 * time.Second
	backupWarnAge   = 7 * 24 * time.Hour
	// retentionWarnRows is the telemetry row count above which keeping everything deserves a warning.
	retentionWarnRows = 10_000_000
)

// Checks returns the checks in their fixed order. The order and names are part of the JSON contract.
func Checks(d Deps) []Check {
	if d.Now == nil {
		d.Now = time.Now
	}
	checks := []Check{
		{"configuration", d.configuration},
		{"data_dir", d.dataDir},
		{"database", d.database},
		{"migrations", d.migrations},
		{"disk", d.disk},
		{"blob_store", d.blobStore},
		{"fuota_certificate", d.fuotaCert},
		{"oidc_issuer", d.oidc},
		{"otlp_tokens", d.otlpTokens},
		{"clock_skew", d.clockSkew},
		{"replicas", d.replicas},
		{"backup", d.backup},
		{"retention", d.retention},
		{"audit_log", d.auditLog},
	}
	for i, c := range checks {
		if reason := d.Skip[c.Name]; reason != "" {
			checks[i].Run = func(context.Context) Result { return notChecked(reason) }
		}
	}
	return checks
}

func (d Deps) configuration(context.Context) Result {
	if !d.ConfigChecked {
		return notChecked("the configuration is not known here")
	}
	if len(d.Config) == 0 {
		return ok("no unknown, conflicting, ignored or weak settings", nil)
	}
	var errs, warns []string
	for _, f := range d.Config {
		line := f.Setting + ": " + f.Problem
		if f.Error {
			errs = append(errs, line)
		} else {
			warns = append(warns, line)
		}
	}
	det := map[string]any{"findings": d.Config}
	if len(errs) > 0 {
		return fail(strings.Join(append(errs, warns...), "; "), det)
	}
	return warn(strings.Join(warns, "; "), det)
}

func (d Deps) dataDir(context.Context) Result {
	if d.DataDir == "" {
		return notChecked("no data directory is configured")
	}
	det := map[string]any{"path": d.DataDir}
	st, err := os.Stat(d.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		// serve creates it: fine if the nearest existing ancestor is a directory we can write.
		parent := filepath.Dir(d.DataDir)
		for {
			pst, perr := os.Stat(parent)
			if perr == nil {
				if !pst.IsDir() {
					return fail(fmt.Sprintf("%s cannot be created: %s is not a directory", d.DataDir, parent), det)
				}
				if err := probeWrite(parent); err != nil {
					return fail(fmt.Sprintf("%s cannot be created: %v", d.DataDir, err), det)
				}
				return warn(d.DataDir+" does not exist yet; serve creates it", det)
			}
			if !errors.Is(perr, fs.ErrNotExist) {
				return fail(fmt.Sprintf("%s cannot be created: %v", d.DataDir, perr), det)
			}
			next := filepath.Dir(parent)
			if next == parent {
				return fail(d.DataDir+" cannot be created: no existing parent directory", det)
			}
			parent = next
		}
	}
	if err != nil {
		return fail(fmt.Sprintf("data directory %s is not usable: %v", d.DataDir, err), det)
	}
	if !st.IsDir() {
		return fail(d.DataDir+" is not a directory", det)
	}
	if err := probeWrite(d.DataDir); err != nil {
		return fail(fmt.Sprintf("data directory %s is not writable: %v", d.DataDir, err), det)
	}
	return ok(d.DataDir+" is a writable directory", det)
}

// probeWrite creates and removes a small file in dir.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".lodestone-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("doctor"))
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

func (d Deps) database(ctx context.Context) Result {
	det := map[string]any{"database": d.DBName}
	if d.DBError != nil {
		return fail(fmt.Sprintf("database %s cannot be opened: %v", d.DBName, d.DBError), det)
	}
	if d.DBAbsent {
		return warn("database "+d.DBName+" does not exist yet; serve creates it", det)
	}
	if d.Ping == nil {
		return notChecked("no database to check")
	}
	start := time.Now()
	if err := d.Ping(ctx); err != nil {
		return fail(fmt.Sprintf("database %s does not answer: %v", d.DBName, err), det)
	}
	det["latency_ms"] = time.Since(start).Milliseconds()
	return ok("database "+d.DBName+" answers", det)
}

func (d Deps) migrations(ctx context.Context) Result {
	if d.DBAbsent {
		return notChecked("no database yet; serve creates it at this binary's schema version")
	}
	if d.DBError != nil || d.Migrations == nil {
		return notChecked("the database could not be opened")
	}
	st, err := d.Migrations(ctx)
	if err != nil {
		return fail(fmt.Sprintf("cannot read the schema version: %v", err), nil)
	}
	pending := st.Pending
	if pending == nil {
		pending = []int64{}
	}
	det := map[string]any{"current": st.Current, "latest": st.Latest, "pending": pending}
	if d.NewestApplied != nil {
		if newest, err := d.NewestApplied(ctx); err == nil && newest > st.Latest {
			det["applied_newest"] = newest
			return fail(fmt.Sprintf("the database is at schema version %d, newer than this binary's %d: "+
				"run the newer lodestone that migrated it", newest, st.Latest), det)
		}
	}
	if len(st.Pending) > 0 {
		return warn(fmt.Sprintf("%d migration(s) pending (version %d of %d): serve applies them on start, or run "+
			"'lodestone migrate up'", len(st.Pending), st.Current, st.Latest), det)
	}
	return ok(fmt.Sprintf("schema at version %d, this binary's latest", st.Current), det)
}

func (d Deps) disk(context.Context) Result {
	if len(d.DiskPaths) == 0 {
		return notChecked("no local directory to check (the database is remote and the blobs are elsewhere)")
	}
	det := map[string]any{}
	worst, msgs := OK, []string{}
	for role, p := range d.DiskPaths {
		free, total, err := freeSpace(existingDir(p))
		if err != nil {
			det[role] = map[string]any{"path": p, "error": err.Error()}
			if worst == OK {
				worst = NotChecked
			}
			msgs = append(msgs, fmt.Sprintf("%s: cannot read free space: %v", role, err))
			continue
		}
		pct := 100.0
		if total > 0 {
			pct = float64(free) * 100 / float64(total)
		}
		det[role] = map[string]any{"path": p, "free_bytes": free, "total_bytes": total, "free_percent": pct}
		switch {
		case free < diskErrorBytes:
			worst = Error
			msgs = append(msgs, fmt.Sprintf("%s (%s): only %s free", role, p, bytesize(free)))
		case free < diskWarnBytes || pct < diskWarnPercent:
			if worst != Error {
				worst = Warn
			}
			msgs = append(msgs, fmt.Sprintf("%s (%s): %s free (%.0f%%)", role, p, bytesize(free), pct))
		}
	}
	switch worst {
	case OK:
		return ok("enough free space", det)
	case NotChecked:
		return Result{Status: NotChecked, Message: strings.Join(msgs, "; "), Details: det}
	case Warn:
		return warn("low free space: "+strings.Join(msgs, "; "), det)
	}
	return fail("disk nearly full: "+strings.Join(msgs, "; "), det)
}

// existingDir is p or its nearest existing ancestor, so a data directory serve has not created yet is measured
// on the file system it will live on.
func existingDir(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		next := filepath.Dir(p)
		if next == p {
			return p
		}
		p = next
	}
}

func bytesize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (d Deps) blobStore(ctx context.Context) Result {
	if d.Blobs == nil {
		return notChecked("no blob store to check")
	}
	// Random bytes, so the probe is never a blob that already exists and that deleting would lose.
	probe := make([]byte, 32)
	rand.Read(probe)
	probe = append([]byte("lodestone doctor probe "), []byte(hex.EncodeToString(probe))...)
	ref, existed, err := d.Blobs.Put(ctx, bytes.NewReader(probe), 1<<10)
	if err != nil {
		return fail(fmt.Sprintf("blob store is not writable: %v", err), nil)
	}
	det := map[string]any{"probe": ref.SHA256}
	if !existed {
		defer d.Blobs.Delete(context.WithoutCancel(ctx), ref.SHA256)
	}
	b, err := d.Blobs.Open(ctx, ref.SHA256)
	if err != nil {
		return fail(fmt.Sprintf("blob store wrote the probe but cannot read it: %v", err), det)
	}
	got, err := io.ReadAll(io.LimitReader(b, 2<<10))
	b.Close()
	if err != nil || !bytes.Equal(got, probe) {
		return fail(fmt.Sprintf("blob store returned other bytes than it stored (err %v)", err), det)
	}
	if !existed {
		if err := d.Blobs.Delete(ctx, ref.SHA256); err != nil {
			return fail(fmt.Sprintf("blob store cannot delete: %v", err), det)
		}
	}
	return ok("blob store wrote, read back and deleted a probe", det)
}

func (d Deps) fuotaCert(context.Context) Result {
	if !d.FUOTAEnabled {
		return notChecked("the FUOTA listener is off (US_AUTH_USERNAME/US_AUTH_PASSWORD unset)")
	}
	det := map[string]any{"file": d.FUOTACert}
	raw, err := os.ReadFile(d.FUOTACert)
	if errors.Is(err, fs.ErrNotExist) {
		return warn(d.FUOTACert+" does not exist yet; serve generates a self-signed certificate", det)
	}
	if err != nil {
		return fail(fmt.Sprintf("cannot read the FUOTA certificate: %v", err), det)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fail(d.FUOTACert+" holds no PEM certificate", det)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fail(fmt.Sprintf("cannot parse the FUOTA certificate: %v", err), det)
	}
	now := d.Now()
	days := int(cert.NotAfter.Sub(now).Hours() / 24)
	det["subject"] = cert.Subject.String()
	det["not_after"] = cert.NotAfter.UTC().Format(time.RFC3339)
	det["days_left"] = days
	switch {
	case now.After(cert.NotAfter):
		return fail(fmt.Sprintf("FUOTA certificate expired on %s", cert.NotAfter.UTC().Format(time.DateOnly)), det)
	case now.Before(cert.NotBefore):
		return fail(fmt.Sprintf("FUOTA certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339)), det)
	case days < certWarnDays:
		return warn(fmt.Sprintf("FUOTA certificate expires in %d days", days), det)
	}
	return ok(fmt.Sprintf("FUOTA certificate valid for %d more days", days), det)
}

func (d Deps) oidc(ctx context.Context) Result {
	if d.OIDCIssuer == "" {
		return notChecked("no OpenID Connect issuer is configured")
	}
	u := strings.TrimRight(d.OIDCIssuer, "/") + "/.well-known/openid-configuration"
	det := map[string]any{"url": u}
	client := d.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(fmt.Sprintf("bad issuer URL: %v", err), det)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(fmt.Sprintf("issuer discovery failed: %v", err), det)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Sprintf("issuer discovery answered %s", resp.Status), det)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		return fail(fmt.Sprintf("issuer discovery document is not JSON: %v", err), det)
	}
	det["jwks_uri"] = meta.JWKSURI
	if strings.TrimRight(meta.Issuer, "/") != strings.TrimRight(d.OIDCIssuer, "/") {
		return fail(fmt.Sprintf("the discovery document names issuer %q, not %q", meta.Issuer, d.OIDCIssuer), det)
	}
	if meta.JWKSURI == "" {
		return fail("the discovery document has no jwks_uri", det)
	}
	return ok("issuer discovery answers", det)
}

func (d Deps) otlpTokens(context.Context) Result {
	if d.OTLPTokenFile == "" || d.LoadOTLPTokens == nil {
		return notChecked("no OTLP token file is configured (--tokens-config)")
	}
	det := map[string]any{"file": d.OTLPTokenFile}
	if err := d.LoadOTLPTokens(d.OTLPTokenFile); err != nil {
		return fail(fmt.Sprintf("OTLP token file does not load: %v", err), det)
	}
	return ok("OTLP token file parses", det)
}

func (d Deps) clockSkew(ctx context.Context) Result {
	if d.DBNow == nil {
		return notChecked("only checked against PostgreSQL; SQLite runs on this machine's clock")
	}
	before := time.Now()
	dbNow, err := d.DBNow(ctx)
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot read the database's clock: %v", err)}
	}
	local := before.Add(time.Since(before) / 2)
	skew := dbNow.Sub(local)
	det := map[string]any{"skew_ms": skew.Milliseconds()}
	if skew.Abs() > skewWarn {
		return warn(fmt.Sprintf("this machine's clock is %s off the database's", skew.Abs().Round(time.Millisecond)), det)
	}
	return ok(fmt.Sprintf("clock within %s of the database's", skew.Abs().Round(time.Millisecond)), det)
}

func (d Deps) replicas(ctx context.Context) Result {
	if d.Replicas == nil {
		return notChecked("only PostgreSQL deployments have replicas; SQLite runs one process")
	}
	n, err := d.Replicas(ctx)
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot count replicas: %v", err)}
	}
	det := map[string]any{"replicas": n}
	msg := fmt.Sprintf("%d replica(s) connected", n)
	if d.IsLeader != nil {
		leading := d.IsLeader()
		det["this_replica_leads"] = leading
		if leading {
			msg += "; this one runs the periodic jobs"
		} else {
			msg += "; another one runs the periodic jobs"
		}
	}
	if n == 0 && d.IsLeader == nil {
		msg = "no server is running on this database"
		return warn(msg, det)
	}
	return ok(msg, det)
}

func (d Deps) backup(ctx context.Context) Result {
	if d.Settings == nil {
		return notChecked("the database could not be opened")
	}
	last, err := LastBackup(ctx, d.Settings, d.Now())
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot read the backup record: %v", err)}
	}
	if last.IsZero() {
		return warn("no backup in the last 7 days: run 'lodestone backup FILE'", map[string]any{"last": nil})
	}
	age := d.Now().Sub(last)
	det := map[string]any{"last": last.UTC().Format(time.RFC3339), "age_hours": int(age.Hours())}
	if age > backupWarnAge {
		return warn(fmt.Sprintf("last backup %d days ago", int(age.Hours()/24)), det)
	}
	return ok(fmt.Sprintf("last backup %s ago", age.Round(time.Minute)), det)
}

func (d Deps) retention(ctx context.Context) Result {
	det := map[string]any{"retention_days": d.RetentionDays}
	if d.Counts == nil {
		return notChecked("the database could not be opened")
	}
	c, err := d.Counts(ctx)
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot count rows: %v", err)}
	}
	rows := c.Faults + c.Metrics + c.Reboots
	det["telemetry_rows"] = rows
	if d.RetentionDays == 0 && rows > retentionWarnRows {
		return warn(fmt.Sprintf("RETENTION_DAYS=0 keeps everything and the database holds %d telemetry rows", rows), det)
	}
	if d.RetentionDays == 0 {
		return ok(fmt.Sprintf("RETENTION_DAYS=0 keeps everything; %d telemetry rows so far", rows), det)
	}
	return ok(fmt.Sprintf("telemetry older than %d days is purged; %d rows", d.RetentionDays, rows), det)
}

// auditLog verifies the audit log's hash chain: an edited or deleted entry is an error, since the log is what an
// operator relies on to know who changed what.
func (d Deps) auditLog(ctx context.Context) Result {
	if d.Audit == nil {
		return notChecked("the database could not be opened")
	}
	head, err := d.Audit.AuditHead(ctx)
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot read the audit chain head: %v", err)}
	}
	v, err := lodestone.VerifyAuditChain(ctx, d.Audit, &head)
	if err != nil {
		return Result{Status: NotChecked, Message: fmt.Sprintf("cannot read the audit log: %v", err)}
	}
	det := map[string]any{"entries": v.Checked, "first_id": v.FirstID, "last_id": v.LastID}
	if !v.OK {
		det["bad_id"] = v.BadID
		return Result{Status: Error, Message: fmt.Sprintf("the audit log was tampered with: entry %d: %s", v.BadID,
			v.Problem), Details: det}
	}
	if v.Checked == 0 {
		return ok("the audit log is empty", det)
	}
	return ok(fmt.Sprintf("the audit log's hash chain holds (%d entries)", v.Checked), det)
}
