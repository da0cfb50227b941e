package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// stabilityCmd is `lodestone report stability`: GET /stability as a table for people or as its JSON, from the
// local database (read-only) or a running server.
type stabilityCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const stabilityUsage = `Stability per firmware version over a time range (default: the last 7 days), for the fleet, a group
or a tag: devices, device-hours observed, crash-free hours, faults and unexpected reboots per 1,000
device-hours, the top crash issues and the comparison with the version the devices ran before. The same
figures as GET /stability and the campaign health gate. Ranges are read in whole hours (UTC).

It reads the local database (--db or --data-dir) without changing it, or, with --server URL, asks a running
server. --json prints GET /stability's answer.

Examples:
  lodestone report stability
  lodestone report stability --from 24h --group eu-west
  lodestone report stability --from 2026-05-01 --to 2026-05-08 --version 2.0.0,2.1.0 --json
`

func (c *stabilityCmd) spec() cmdSpec {
	return cmdSpec{use: "stability", short: "stability per firmware version, as a table or JSON",
		long: stabilityUsage, setup: func(fs *flag.FlagSet) runFunc {
			db := dbFlags(fs, c.getenv)
			server, token := remoteFlags(fs, c.getenv)
			asJSON := fs.Bool("json", false, "print JSON (GET /stability's answer) instead of a table")
			from := fs.String("from", "7d", "start: a `duration` ago (24h, 7d) or a time (2026-05-01T08:00:00Z)")
			to := fs.String("to", "", "end: a `duration` ago or a time (default now)")
			group := fs.String("group", "", "only this group's devices (its `name`)")
			tag := fs.String("tag", "", "only devices with this `tag`")
			versions := fs.String("version", "", "only these firmware versions (`list`, comma-separated)")
			return func(ctx context.Context, _ []string) error {
				now := time.Now()
				q := lodestone.StabilityQuery{Group: *group, Tag: *tag, To: now.UTC().Truncate(time.Millisecond)}
				var err error
				if q.From, err = agoOrTime("--from", *from, now); err != nil {
					return usageError{err}
				}
				if *to != "" {
					if q.To, err = agoOrTime("--to", *to, now); err != nil {
						return usageError{err}
					}
				}
				for _, v := range strings.Split(*versions, ",") {
					if v = strings.TrimSpace(v); v != "" {
						q.Versions = append(q.Versions, v)
					}
				}
				if err := lodestone.ValidateStabilityQuery(q); err != nil {
					return usageError{fmt.Errorf("report stability: %w", err)}
				}
				var raw json.RawMessage
				if *server != "" {
					v := url.Values{"from": {q.From.Format(time.RFC3339Nano)}, "to": {q.To.Format(time.RFC3339Nano)}}
					if q.Group != "" {
						v.Set("group", q.Group)
					}
					if q.Tag != "" {
						v.Set("tag", q.Tag)
					}
					v["version"] = q.Versions
					r := newRemote(*server, *token, c.getenv, 60*time.Second)
					if err := r.getJSON(ctx, "/stability?"+v.Encode(), &raw); err != nil {
						return err
					}
				} else {
					cfg, err := db.config()
					if err != nil {
						return err
					}
					local, err := openReadOnly(ctx, cfg.DB)
					if err != nil {
						return err
					}
					defer local.Close()
					rep, err := local.Stability(ctx, q)
					if err != nil {
						return err
					}
					if raw, err = json.Marshal(httpapi.StabilityJSON(rep, q)); err != nil {
						return err
					}
				}
				if *asJSON {
					_, err := fmt.Fprintf(c.stdout, "%s\n", raw)
					return err
				}
				var rep stabilityReport
				if err := json.Unmarshal(raw, &rep); err != nil {
					return fmt.Errorf("report stability: read the answer: %w", err)
				}
				return printStability(c.stdout, rep)
			}
		}}
}

// agoOrTime reads a duration back from now (days allowed: 7d) or a time as the API accepts it.
func agoOrTime(flagName, s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err == nil && n >= 0 && fmt.Sprint(n) == d {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC(), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	if t, ok := httpapi.ParseTime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want a duration such as 24h or 7d, or a time such as 2026-05-01T08:00:00Z",
		flagName, s)
}

// stabilityReport is GET /stability's answer, as the table needs it.
type stabilityReport struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Group    string `json:"group"`
	Tag      string `json:"tag"`
	Versions []struct {
		Version           string         `json:"version"`
		Devices           int            `json:"devices"`
		DeviceHours       float64        `json:"device_hours"`
		CrashFreeHoursPct float64        `json:"crash_free_hours_pct"`
		Faults            int            `json:"faults"`
		FaultsPer1000h    float64        `json:"faults_per_1000h"`
		UnexpectedReboots int            `json:"unexpected_reboots"`
		RebootsPer1000h   float64        `json:"reboots_per_1000h"`
		RebootsByReason   map[string]int `json:"reboots_by_reason"`
		TopIssues         []struct {
			IssueID     int64  `json:"issue_id"`
			Title       string `json:"title"`
			Devices     int    `json:"devices"`
			Occurrences int    `json:"occurrences"`
		} `json:"top_issues"`
		Previous   *string `json:"previous"`
		VsPrevious *struct {
			Version                string  `json:"version"`
			CrashFreeHoursPctDelta float64 `json:"crash_free_hours_pct_delta"`
			FaultsRatio            float64 `json:"faults_ratio"`
			RebootsRatio           float64 `json:"reboots_ratio"`
		} `json:"vs_previous"`
	} `json:"versions"`
}

func printStability(w io.Writer, r stabilityReport) error {
	scope := "the fleet"
	switch {
	case r.Group != "":
		scope = "group " + r.Group
	case r.Tag != "":
		scope = "devices tagged " + r.Tag
	}
	fmt.Fprintf(w, "Stability of %s, %s to %s (UTC)\n\n", scope, r.From, r.To)
	if len(r.Versions) == 0 {
		_, err := fmt.Fprintln(w, "No device was observed in this range.")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "Version\tDevices\tDevice-hours\tCrash-free hours\tFaults\tFaults/1000h\tUnexpected reboots/1000h\tvs previous")
	for _, v := range r.Versions {
		vs := "-"
		if c := v.VsPrevious; c != nil {
			vs = fmt.Sprintf("%s: faults ×%.2f, reboots ×%.2f, crash-free %+.1f pts", c.Version, c.FaultsRatio,
				c.RebootsRatio, c.CrashFreeHoursPctDelta)
		} else if v.Previous != nil {
			vs = *v.Previous + ": not observed in range"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f%%\t%d\t%.2f\t%.2f\t%s\n", clip(cmpOr(v.Version, "(unknown)"), 24), v.Devices,
			v.DeviceHours, v.CrashFreeHoursPct, v.Faults, v.FaultsPer1000h, v.RebootsPer1000h, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var issues, reboots []string
	for _, v := range r.Versions {
		for _, is := range v.TopIssues {
			issues = append(issues, fmt.Sprintf("  %s\t#%d %s\t%d devices\t%d occurrences", v.Version, is.IssueID,
				clip(cmpOr(is.Title, "(untitled)"), 60), is.Devices, is.Occurrences))
		}
		reasons := make([]string, 0, len(v.RebootsByReason))
		for name := range v.RebootsByReason {
			reasons = append(reasons, name)
		}
		slices.Sort(reasons)
		for _, name := range reasons {
			reboots = append(reboots, fmt.Sprintf("  %s\t%s\t%d", v.Version, name, v.RebootsByReason[name]))
		}
	}
	for _, part := range []struct {
		title string
		lines []string
	}{{"Top crash issues", issues}, {"Unexpected reboots by reason", reboots}} {
		if len(part.lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", part.title)
		tw := table(w)
		for _, l := range part.lines {
			fmt.Fprintln(tw, l)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
