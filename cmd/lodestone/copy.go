package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/lodestone-fleet/lodestone"
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

const copyUsage = `Copies a whole lodestone instance, records and blobs, from its SQLite database to an empty
PostgreSQL database, keeping every id, then counts the rows on both sides and fails if they
differ. Stop the server first: the copy reads one snapshot, and rows written after it would
be left behind. The PostgreSQL side is written in one transaction, so a failed copy leaves it
empty and can simply be run again.

Examples:
  lodestone copy --to postgres://lodestone@db.internal:5432/lodestone
  lodestone copy --from sqlite:///srv/lodestone/lodestone.db --to postgres://… \
                 --to-blobs 's3://lodestone-blobs?endpoint=s3.internal:9000'
`

func (c *copyCmd) spec() cmdSpec {
	return cmdSpec{use: "copy --to postgres://…", short: "move a whole instance from SQLite to PostgreSQL (and its blobs)",
		long: copyUsage, setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			o := &copyOptions{}
			fs.StringVar(&o.from, "from", "", "source SQLite `database`: a file or sqlite://path (default: --db, the one serve uses)")
			fs.StringVar(&o.to, "to", "", "destination `postgres://…` URL of an empty database; it is migrated first")
			fs.StringVar(&o.fromBlobs, "from-blobs", "", "source blob store `URL` (default: --blobs, the one serve uses, <data-dir>/blobs)")
			fs.StringVar(&o.toBlobs, "to-blobs", "", "destination blob store `URL`: s3://bucket/prefix?endpoint=… or file:///path; unset leaves blobs where they are")
			fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON instead of a table")
			return func(ctx context.Context, _ []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.copy(ctx, cfg, *o)
			}
		}}
}

func (c *copyCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

type copyOptions struct {
	to, from, fromBlobs, toBlobs string
	asJSON                       bool
}

func (c *copyCmd) copy(ctx context.Context, cfg Config, o copyOptions) error {
	to, from, fromBlobs, toBlobs, asJSON := o.to, o.from, o.fromBlobs, o.toBlobs, o.asJSON
	var err error
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

	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if fromBlobs == "" {
		fromBlobs = cfg.Blobs
	}
	var blobFrom, blobTo lodestone.BlobStore
	if toBlobs != "" {
		if blobFrom, err = openBlobs(ctx, fromBlobs, cfg.DataDir, cfg.s3Keys(), log); err != nil {
			return fmt.Errorf("--from-blobs: %w", err)
		}
		if blobTo, err = openBlobs(ctx, toBlobs, cfg.DataDir, cfg.s3Keys(), log); err != nil {
			return fmt.Errorf("--to-blobs: %w", err)
		}
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
			bar = newProgressBar(c.stderr, "records", p.Total, false)
		}
		bar.Set(p.Rows)
	})
	if bar != nil && err == nil {
		bar.Done(bar.total)
	}
	if err != nil {
		return err
	}
	result := map[string]any{"from": src.String(), "to": dst.String(), "tables": counts}
	var blobsCopied, blobsPresent int
	if blobTo != nil {
		var bbar *progressBar
		blobsCopied, blobsPresent, err = transfer.CopyBlobs(ctx, blobFrom, blobTo, func(p transfer.BlobProgress) {
			if asJSON {
				return
			}
			if bbar == nil {
				bbar = newProgressBar(c.stderr, "blobs", p.TotalBytes, true)
			}
			bbar.Set(p.Bytes)
		})
		if bbar != nil && err == nil {
			bbar.Done(bbar.total)
		}
		if err != nil {
			return err
		}
		result["blobs"] = map[string]int{"copied": blobsCopied, "already_present": blobsPresent}
	}
	if asJSON {
		return jsonOut(c.stdout, result)
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
	if blobTo != nil {
		fmt.Fprintf(c.stdout, "copied %d blobs (%d were already there)\n", blobsCopied, blobsPresent)
	} else {
		fmt.Fprintln(c.stdout, "blobs were not copied (no --to-blobs): start the replicas with --blobs pointing at a store they all reach")
	}
	return nil
}
