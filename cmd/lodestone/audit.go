package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"

	"github.com/spf13/cobra"
)

// auditCmd lists the audit log, or checks its hash chain (audit verify), from the local database or a server.
type auditCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const auditUsage = `  audit         the newest operator actions (50 unless --limit): time, actor, action, target, client, channel
  audit verify  check the hash chain of the whole log: every entry's hash against its content, each entry's link
                to the one before, no gap, and the newest entry against the chain head. It names the oldest entry
                found wrong and exits 1; 0 when the chain holds.

Both read the local database (--db or --data-dir, as serve uses them) without changing it, or, with --server URL,
a running server's GET /admin/audit with an admin --token (or BASIC_AUTH_USER/BASIC_AUTH_PASS). Checking through
a server trusts that server to hand out the rows it holds; check the database itself when it is the suspect.
--json prints {"entries":[...],"next":...} as GET /admin/audit does, or the verification result.

Examples:
  lodestone audit --actor admin --since 24h
  lodestone audit --action 'campaign.*' --json
  lodestone audit verify
  lodestone audit verify --server https://fleet.example.com --token $TOKEN
`

// auditSource is where the log is read: the local store or a server.
type auditSource interface {
	lodestone.AuditLog
	AuditHead(ctx context.Context) (lodestone.AuditHead, error)
}

func (c *auditCmd) spec() cmdSpec {
	return cmdSpec{use: "audit [verify]", short: "list the audit log of operator actions, or check its hash chain (audit verify)",
		long: auditUsage, args: usageArgs(cobra.MaximumNArgs(1), cobra.OnlyValidArgs), validArgs: []string{"verify"},
		setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			o := &auditOptions{}
			o.server, o.token = remoteFlags(fs, c.getenv)
			fs.BoolVar(&o.asJSON, "json", false, "print JSON instead of a table")
			fs.IntVar(&o.f.Limit, "limit", 50, "show at most `n` entries, newest first (at most 1000)")
			fs.StringVar(&o.f.Actor, "actor", "", "only this `actor` (user name, token:NAME, FUOTA login)")
			fs.StringVar(&o.f.Action, "action", "", "only this `action`; a trailing .* matches a prefix (campaign.*)")
			fs.StringVar(&o.f.Target, "target", "", "only this `target` id")
			fs.StringVar(&o.f.TargetKind, "target-kind", "", "only targets of this `kind` (device, group, campaign, …)")
			fs.StringVar(&o.since, "since", "", "only newer than this: a `duration` ago (24h) or a time")
			fs.StringVar(&o.until, "until", "", "only older than this: a `duration` ago or a time")
			fs.Int64Var(&o.f.BeforeID, "before", 0, "only entries older than entry `id` (the next page)")
			return func(ctx context.Context, args []string) error {
				verify := len(args) == 1
				var filter string
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "limit", "actor", "action", "target", "target-kind", "since", "until", "before":
						filter = f.Name
					}
				})
				if verify && filter != "" {
					return usageError{fmt.Errorf("audit verify checks the whole log: --%s does not apply", filter)}
				}
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.audit(ctx, cfg, verify, *o)
			}
		}}
}

func (c *auditCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

type auditOptions struct {
	server, token *string
	asJSON        bool
	f             lodestone.AuditFilter
	since, until  string
}

func (c *auditCmd) audit(ctx context.Context, cfg Config, verify bool, o auditOptions) error {
	server, token, asJSON, f, since, until := o.server, o.token, o.asJSON, o.f, o.since, o.until
	var err error
	now := time.Now()
	if since != "" {
		if f.Since, err = parseSince(since, now); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	if until != "" {
		if f.Until, err = parseSince(until, now); err != nil {
			return fmt.Errorf("audit: --until %q: want a duration such as 24h or a time such as "+
				"2026-05-01T08:00:00Z", until)
		}
	}
	if !verify && (f.Limit < 1 || f.Limit > lodestone.MaxListLimit) {
		return fmt.Errorf("audit: --limit must be between 1 and %d", lodestone.MaxListLimit)
	}

	var src auditSource
	if *server != "" {
		src = remoteAudit{newRemote(*server, *token, c.getenv, 60*time.Second)}
	} else {
		local, err := openReadOnly(ctx, cfg.DB)
		if err != nil {
			return err
		}
		defer local.Close()
		a, ok := local.(lodestone.AuditStore)
		if !ok {
			return errors.New("audit: this database backend keeps no audit log")
		}
		src = a
	}

	if verify {
		return c.verify(ctx, src, asJSON)
	}
	es, err := src.FindAudit(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		out := httpapi.AuditPageJSON{Entries: make([]httpapi.AuditEntryJSON, 0, len(es))}
		for _, e := range es {
			out.Entries = append(out.Entries, httpapi.NewAuditEntryJSON(e))
		}
		if out.Head, err = src.AuditHead(ctx); err != nil {
			return err
		}
		if len(es) == f.Limit {
			next := strconv.FormatInt(es[len(es)-1].ID, 10)
			out.Next = &next
		}
		return jsonOut(c.stdout, out)
	}
	return printAudit(c.stdout, es)
}

func (c *auditCmd) verify(ctx context.Context, src auditSource, asJSON bool) error {
	head, err := src.AuditHead(ctx)
	if err != nil {
		return err
	}
	v, err := lodestone.VerifyAuditChain(ctx, src, &head)
	if err != nil {
		return err
	}
	if asJSON {
		if err := jsonOut(c.stdout, v); err != nil {
			return err
		}
	} else if v.OK {
		fmt.Fprintf(c.stdout, "audit log verified: %d entries (%d to %d), chain head %d\n", v.Checked, v.FirstID,
			v.LastID, head.ID)
	}
	if !v.OK {
		return fmt.Errorf("audit log tampered: entry %d: %s", v.BadID, v.Problem)
	}
	return nil
}

func printAudit(w io.Writer, es []*lodestone.AuditEntry) error {
	if len(es) == 0 {
		_, err := fmt.Fprintln(w, "No audit entries.")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tTIME (UTC)\tACTOR\tACTION\tTARGET\tCLIENT\tVIA")
	for _, e := range es {
		target := e.TargetKind
		if e.Target != "" {
			target += " " + e.Target
		}
		actor := e.Actor
		if e.ActorKind != lodestone.ActorUser {
			actor = e.ActorKind + ":" + strings.TrimPrefix(e.Actor, e.ActorKind+":")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.UTC().Format(timeText), clip(actor, 32),
			e.Action, clip(target, 40), e.ClientAddr, e.Via)
	}
	return tw.Flush()
}

// remoteAudit reads a server's GET /admin/audit.
type remoteAudit struct{ r *remote }

func (s remoteAudit) AppendAudit(context.Context, *lodestone.AuditEntry) error {
	return errors.New("audit: a remote audit log is read-only here")
}

func (s remoteAudit) page(ctx context.Context, f lodestone.AuditFilter) (*httpapi.AuditPageJSON, error) {
	q := url.Values{"limit": {strconv.Itoa(lodestone.ClampLimit(f.Limit))}}
	for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target,
		"target_kind": f.TargetKind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.BeforeID > 0 {
		q.Set("before", strconv.FormatInt(f.BeforeID, 10))
	}
	var p httpapi.AuditPageJSON
	if err := s.r.getJSON(ctx, "/admin/audit?"+q.Encode(), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (s remoteAudit) FindAudit(ctx context.Context, f lodestone.AuditFilter) ([]*lodestone.AuditEntry, error) {
	p, err := s.page(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*lodestone.AuditEntry, 0, len(p.Entries))
	for _, j := range p.Entries {
		e, err := j.Entry()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (s remoteAudit) AuditHead(ctx context.Context) (lodestone.AuditHead, error) {
	p, err := s.page(ctx, lodestone.AuditFilter{Limit: 1})
	if err != nil {
		return lodestone.AuditHead{}, err
	}
	return p.Head, nil
}

// auditLocal records an action a command takes on the local database (db, as --db names it) without a server: the
// actor is the operating-system user, the channel the CLI, the client this host.
func auditLocal(ctx context.Context, db, action, kind string, after any) error {
	spec, err := parseDB(db)
	if err != nil {
		return err
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	e := &lodestone.AuditEntry{ActorKind: lodestone.ActorUser, Actor: "os:" + name, Action: action,
		TargetKind: kind, ClientAddr: host, Via: lodestone.ViaCLI}
	if after != nil {
		if e.After, err = json.Marshal(after); err != nil {
			return err
		}
	}
	if spec.dialect == schema.Postgres {
		pg, err := postgres.Open(ctx, spec.target, postgres.Options{NoMigrate: true, MaxConns: 1})
		if err != nil {
			return err
		}
		defer pg.Close()
		return pg.AppendAudit(ctx, e)
	}
	return sqlite.AppendAuditFile(ctx, spec.target, e)
}
