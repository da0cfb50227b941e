package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"

	"github.com/spf13/cobra"
)

// logsCmd works on the stored OTLP log records.
type logsCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const logsUsage = `  export   write the stored log records as detritus writes them: DIR/logs/<project>/<install_id>/YYYY-MM-DD.ndjson,
           one JSON line per record in arrival order, the day being the UTC day the record was received

--since and --until (a date YYYY-MM-DD or an RFC 3339 time) select whole UTC days by receive time, until
exclusive. Each file is written complete and renamed into place when the export succeeds, replacing a file of the
same name; files of days or sources not exported are left alone. It reads the database directly, so it runs beside
a live server.

Examples:
  lodestone logs export --dir ./detritus-data
  lodestone logs export --dir /srv/export --project regicide --since 2026-05-01 --until 2026-06-01
`

func (c *logsCmd) spec() cmdSpec {
	return cmdSpec{use: "logs export --dir DIR", short: "export stored OTLP log records in detritus' daily NDJSON files",
		long: logsUsage, args: usageArgs(exactArgs("export"), cobra.OnlyValidArgs), validArgs: []string{"export"},
		setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			o := &logsOptions{}
			fs.StringVar(&o.dir, "dir", "", "`directory` to write logs/<project>/<install_id>/<day>.ndjson under (created)")
			fs.StringVar(&o.project, "project", "", "export only this `project`")
			fs.StringVar(&o.since, "since", "", "first UTC `day` to export (YYYY-MM-DD or RFC 3339)")
			fs.StringVar(&o.until, "until", "", "UTC `day` to stop before (YYYY-MM-DD or RFC 3339)")
			return func(ctx context.Context, _ []string) error {
				cfg, err := db.config()
				if err != nil {
					return err
				}
				return c.export(ctx, cfg, *o)
			}
		}}
}

func (c *logsCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}

type logsOptions struct{ dir, project, since, until string }

func (c *logsCmd) export(ctx context.Context, cfg Config, lo logsOptions) error {
	dir, project, since, until := lo.dir, lo.project, lo.since, lo.until
	var err error
	if dir == "" {
		return fmt.Errorf("logs export: --dir is required")
	}
	o := otlp.ExportOptions{Project: project}
	if o.Since, err = parseDay("--since", since); err != nil {
		return err
	}
	if o.Until, err = parseDay("--until", until); err != nil {
		return err
	}
	spec, err := parseDB(cfg.DB)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, spec, "")
	if err != nil {
		return err
	}
	defer db.Close()
	scanner, ok := db.Store.(lodestone.LogScanner)
	if !ok {
		return fmt.Errorf("logs export: the %s store cannot list log records", spec)
	}
	st, err := otlp.ExportNDJSON(ctx, scanner, dir, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "exported %d log records into %d files under %s\n", st.Records, st.Files, dir)
	return nil
}

func parseDay(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want YYYY-MM-DD or an RFC 3339 time, got %q", flagName, v)
	}
	return t, nil
}
