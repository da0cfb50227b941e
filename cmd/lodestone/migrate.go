package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// migrateCmd shows or applies schema migrations. serve migrates on start as well; this command lets an operator
// see what a new version will change, and apply it once before starting several replicas.
type migrateCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const migrateUsage = `  status   show the database's schema version and the migrations this binary would apply
  up       apply every pending migration (serve also does this when it starts)

The database is the one serve would use: --db, else LODESTONE_DB, else <data-dir>/lodestone.db.
Replicas that start at the same time take turns, so each migration runs once.

Examples:
  lodestone migrate status
  lodestone migrate up --db postgres://lodestone@db.internal:5432/lodestone
`

// dbFlags registers --data-dir and --db on fs over the environment's configuration: defaults < .env <
// environment < flags, as serve resolves them.
func dbFlags(fs *flag.FlagSet, getenv func(string) string) *dbSettings {
	d := &dbSettings{cfg: defaultConfig()}
	wd, _ := os.Getwd()
	d.envErr = loadEnv(&d.cfg, getenv, wd)
	fs.StringVar(&d.cfg.DataDir, "data-dir", d.cfg.DataDir, "`directory` holding lodestone.db (env LODESTONE_DATA_DIR)")
	fs.StringVar(&d.cfg.DB, "db", d.cfg.DB, "database: a SQLite `file`, sqlite://path or postgres://… (env LODESTONE_DB)")
	return d
}

// dbSettings is the configuration dbFlags fills in.
type dbSettings struct {
	cfg    Config
	envErr error
}

// config resolves the configuration once the flags are parsed.
func (d *dbSettings) config() (Config, error) {
	if d.envErr != nil {
		return d.cfg, d.envErr
	}
	return d.cfg, d.cfg.resolve()
}

func (c *migrateCmd) spec() cmdSpec {
	return cmdSpec{use: "migrate status|up", short: "show or apply database schema migrations (status, up)",
		long: migrateUsage, args: usageArgs(exactArgs("status or up"), cobra.OnlyValidArgs),
		validArgs: []string{"status", "up"},
		setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			asJSON := fs.Bool("json", false, "print the status as JSON")
			return func(ctx context.Context, args []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.migrate(ctx, cfg, args[0], *asJSON)
			}
		}}
}

func (c *migrateCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

func (c *migrateCmd) migrate(ctx context.Context, cfg Config, action string, asJSON bool) error {
	spec, err := parseDB(cfg.DB)
	if err != nil {
		return err
	}
	before, err := migrationStatus(ctx, spec)
	if err != nil && action == "status" {
		return err
	}
	if action == "up" {
		db, err := openStore(ctx, spec, cfg.SQLiteSync) // opening migrates, under the replicas' lock
		if err != nil {
			return err
		}
		db.Close()
		after, err := migrationStatus(ctx, spec)
		if err != nil {
			return err
		}
		if !asJSON {
			if before.Current == after.Current {
				fmt.Fprintf(c.stdout, "%s is up to date at version %d\n", spec, after.Current)
			} else {
				fmt.Fprintf(c.stdout, "%s migrated from version %d to %d\n", spec, before.Current, after.Current)
			}
			return nil
		}
		before = after
	}
	if asJSON {
		pending := before.Pending
		if pending == nil {
			pending = []int64{}
		}
		return jsonOut(c.stdout, map[string]any{"database": spec.String(),
			"dialect": spec.dialect, "current": before.Current, "latest": before.Latest, "pending": pending})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "database\t%s\n", spec)
	fmt.Fprintf(tw, "dialect\t%s\n", spec.dialect)
	fmt.Fprintf(tw, "current version\t%d\n", before.Current)
	fmt.Fprintf(tw, "latest version\t%d\n", before.Latest)
	if len(before.Pending) == 0 {
		fmt.Fprintf(tw, "pending\tnone\n")
	} else {
		fmt.Fprintf(tw, "pending\t%v (run 'lodestone migrate up')\n", before.Pending)
	}
	return tw.Flush()
}

func migrationStatus(ctx context.Context, spec dbSpec) (schema.Status, error) {
	if spec.dialect == schema.Postgres {
		return postgres.Status(ctx, spec.target)
	}
	return sqlite.Status(ctx, spec.target)
}
