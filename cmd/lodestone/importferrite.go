package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/lodestone-fleet/lodestone/ferritedb"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// importFerriteCmd imports a ferrite-server database into lodestone's store, so users switching over keep their
// devices, keys, groups and history.
type importFerriteCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const importFerriteUsage = `Imports a ferrite-server SQLite database into lodestone's store (the --db that serve uses,
SQLite or PostgreSQL): devices with their device keys, names, tags and status; groups and
memberships; faults, metrics and reboots with their original times; OTA targets. The ferrite
file is only read. Devices lodestone knows already are merged (the later contact wins; names,
tags and keys lodestone has are kept). Faults are symbolicated and grouped into crash issues
by the server once it runs (upload the ELF files with 'lodestone symbols upload'). Firmware
images, campaigns and crash groups are not imported.

The import is recorded in the store; a second import is refused unless --force, since it
would duplicate telemetry. Stop ferrite-server first, or import a copy of its database.

Examples:
  lodestone import-ferrite /srv/ferrite/ferrite.db
  lodestone import-ferrite ferrite.db --db postgres://lodestone@db.internal/lodestone --json
`

func (c *importFerriteCmd) spec() cmdSpec {
	return cmdSpec{use: "import-ferrite PATH/ferrite.db", short: "import a ferrite-server database (devices, groups, history)",
		long: importFerriteUsage, args: usageArgs(exactArgs("one ferrite database file")), setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			asJSON := fs.Bool("json", false, "print the summary as JSON, without progress")
			force := fs.Bool("force", false, "import even though the store records an earlier import")
			return func(ctx context.Context, args []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.importFerrite(ctx, cfg, args[0], *asJSON, *force)
			}
		}}
}

func (c *importFerriteCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

func (c *importFerriteCmd) importFerrite(ctx context.Context, cfg Config, path string, asJSON, force bool) error {
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("import-ferrite: %s is not a readable file", path)
	}
	src, err := sql.Open(sqlite.DriverName, sqlite.URI(path, url.Values{"mode": {"ro"}, "_txlock": {"deferred"}}, "busy_timeout(10000)"))
	if err != nil {
		return fmt.Errorf("import-ferrite: open %s: %w", path, err)
	}
	defer src.Close()
	spec, err := parseDB(cfg.DB)
	if err != nil {
		return err
	}
	// NORMAL: an import that a power cut interrupts is run again with --force; fsync per commit would make a
	// large import crawl.
	dst, err := openStore(ctx, spec, "NORMAL")
	if err != nil {
		return err
	}
	defer dst.Close()

	var bar *progressBar
	sum, err := ferritedb.Import(ctx, src, dst, ferritedb.Options{Force: force, Progress: func(p ferritedb.Progress) {
		if asJSON {
			return
		}
		if bar == nil {
			bar = newProgressBar(c.stderr, "rows", p.Total, false)
		}
		bar.Set(p.Rows)
	}})
	if bar != nil && err == nil {
		bar.Done(bar.total)
	}
	if err != nil {
		return fmt.Errorf("import-ferrite: %w", err)
	}
	if asJSON {
		return jsonOut(c.stdout, map[string]any{"from": path, "to": spec.String(), "imported": sum})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, r := range []struct {
		name string
		n    int
	}{{"devices", sum.Devices}, {"device keys", sum.Keys}, {"groups", sum.Groups},
		{"memberships", sum.Memberships}, {"faults", sum.Faults}, {"metrics", sum.Metrics},
		{"reboots", sum.Reboots}, {"OTA targets", sum.Targets}, {"rows left out", sum.Skipped}} {
		fmt.Fprintf(tw, "%s\t%d\t\n", r.name, r.n)
	}
	tw.Flush()
	for _, w := range sum.Warnings {
		fmt.Fprintln(c.stdout, "warning:", w)
	}
	fmt.Fprintf(c.stdout, "\nimported %s into %s\n", path, spec)
	return nil
}
