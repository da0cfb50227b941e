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
)

// logsCmd works on the stored OTLP log records.
type logsCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const logsUsage = `Usage: lodestone logs export --dir DIR [flags]

  export   write the stored log records as detritus writes them: DIR/logs/<project>/<install_id>/YYYY-MM-DD.ndjson,
           one JSON line per record in arrival order, the day being the UTC day the record was received

--since and --until (a date YYYY-MM-DD or an RFC 3339 time) select whole UTC days by receive time, until
exclusive. Each file is written complete and renamed into place when the export succeeds, replacing a file of the
same name; files of days or sources not exported are left alone. It reads the database directly, so it runs beside
a live server.

Examples:
  lodestone logs export --dir ./detritus-data
  lodestone logs export --dir /srv/export --project regicide --since 2026-05-01 --until 2026-06-01

Flags:
`

func (c *logsCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "export" {
		fmt.Fprint(c.stderr, logsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("logs: want 'export --dir DIR'")
	}
	var dir, project, since, until string
	cfg, _, err := dbConfig("logs export", c.stderr, c.getenv, args[1:], logsUsage, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "dir", "", "`directory` to write logs/<project>/<install_id>/<day>.ndjson under (created)")
		fs.StringVar(&project, "project", "", "export only this `project`")
		fs.StringVar(&since, "since", "", "first UTC `day` to export (YYYY-MM-DD or RFC 3339)")
		fs.StringVar(&until, "until", "", "UTC `day` to stop before (YYYY-MM-DD or RFC 3339)")
	})
	if err != nil {
		return err
	}
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
