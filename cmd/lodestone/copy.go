package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/transfer"
)

// copyCmd moves a whole instance from the embedded SQLite database to PostgreSQL: the way up when a fleet
// outgrows one machine.
type copyCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const copyUsage = `Usage: lodestone copy --to postgres://… [flags]

Copies a whole lodestone instance, records and blobs, from its SQLite database to an empty
PostgreSQL database, keeping every id, then counts the rows on both sides and fails if they
differ. Stop the server first: the copy reads one snapshot, and rows written after it would
be left behind. The PostgreSQL side is written in one transaction, so a failed copy leaves it
empty and can simply be run again.

Examples:
  lodestone copy --to postgres://lodestone@db.internal:5432/lodestone
  lodestone copy --from sqlite:///srv/lodestone/lodestone.db --to postgres://… \
                 --to-blobs 's3://lodestone-blobs?endpoint=s3.internal:9000'

Flags:
`

func (c *copyCmd) Run(ctx context.Context, args []string) error {
	var to, from string
	var asJSON bool
	cfg, _, err := dbConfig("copy", c.stderr, c.getenv, args, copyUsage, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "source SQLite `database`: a file or sqlite://path (default: --db, the one serve uses)")
		fs.StringVar(&to, "to", "", "destination `postgres://…` URL of an empty database; it is migrated first")
		fs.BoolVar(&asJSON, "json", false, "print the result as JSON instead of a table")
	})
	if err != nil {
		return err
	}
	if from == "" {
		from = cfg.DB
	}
	src, err := parseDB(from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if src.dialect != schema.SQLite {
		return fmt.Errorf("--from must be a SQLite database; copying out of PostgreSQL is not supported")
	}
	if to == "" {
		return fmt.Errorf("--to is required: the postgres://… URL of an empty database")
	}
	dst, err := parseDB(to)
	if err != nil || dst.dialect != schema.Postgres {
		return fmt.Errorf("--to must be a postgres://… URL, got %q", redactURL(to))
	}

	sdb, err := sqlite.Open(ctx, src.target, sqlite.Options{})
	if err != nil {
		return err
	}
	defer sdb.Close()
	pdb, err := postgres.Open(ctx, dst.target, postgres.Options{})
	if err != nil {
		return err
	}
	defer pdb.Close()

	var bar *progressBar
	counts, err := transfer.Copy(ctx, sdb.ReadDB(), pdb.Pool(), func(p transfer.Progress) {
		if asJSON {
			return
		}
		if bar == nil {
			bar = newProgressBar(c.stderr, "records", p.Total, func(n int64) string { return fmt.Sprintf("%d rows", n) })
		}
		bar.Set(p.Rows)
	})
	if bar != nil && err == nil {
		bar.Done(bar.total)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return jsonOut(c.stdout, map[string]any{"from": src.String(), "to": dst.String(),
			"tables": counts})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\tsqlite\tpostgres\t")
	var total int64
	for _, n := range counts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", n.Table, n.Source, n.Destination)
		total += n.Source
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "\ncopied %d rows from %s to %s; counts match\n", total, src, dst)
	return nil
}
