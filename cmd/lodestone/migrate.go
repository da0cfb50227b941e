package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

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

const migrateUsage = `Usage: lodestone migrate status|up [flags]

  status   show the database's schema version and the migrations this binary would apply
  up       apply every pending migration (serve also does this when it starts)

The database is the one serve would use: --db, else LODESTONE_DB, else <data-dir>/lodestone.db.
Replicas that start at the same time take turns, so each migration runs once.

Examples:
  lodestone migrate status
  lodestone migrate up --db postgres://lodestone@db.internal:5432/lodestone

Flags:
`

// dbConfig resolves --db and --data-dir the way serve does: defaults < .env < environment < flags.
func dbConfig(name string, stderr io.Writer, getenv func(string) string, args []string, usage string,
	extra func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	cfg := defaultConfig()
	wd, _ := os.Getwd()
	if err := loadEnv(&cfg, getenv, wd); err != nil {
		return cfg, nil, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "`directory` holding lodestone.db (env LODESTONE_DATA_DIR)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "database: a SQLite `file`, sqlite://path or postgres://… (env LODESTONE_DB)")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	return cfg, fs, cfg.resolve()
}

func (c *migrateCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "up") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(c.stderr, migrateUsage)
			return flag.ErrHelp
		}
		fmt.Fprint(c.stderr, migrateUsage)
		return fmt.Errorf("migrate: want 'status' or 'up'")
	}
	action := args[0]
	var asJSON bool
	cfg, _, err := dbConfig("migrate", c.stderr, c.getenv, args[1:], migrateUsage, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the status as JSON")
	})
	if err != nil {
		return err
	}
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
