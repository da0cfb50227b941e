// Package doctor runs lodestone's health checks: an ordered list of checks, each ok, warn, error or not_checked,
// with a stable JSON report. `lodestone doctor` runs them on a local data directory and GET /admin/doctor in a
// running server; both build their checks here from the dependencies they have.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Status is one check's outcome.
type Status string

// The statuses. NotChecked is a check that could not run: it never counts as a pass and never as a failure.
const (
	OK         Status = "ok"
	Warn       Status = "warn"
	Error      Status = "error"
	NotChecked Status = "not_checked"
)

// Result is one check's answer. Every field is always present in JSON; Details is an empty object when there is
// nothing more to say. The schema only grows.
type Result struct {
	Name    string         `json:"name"`
	Status  Status         `json:"status"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// Summary counts the results; Overall is the worst status among those that ran (ok when none failed or warned).
type Summary struct {
	Overall    Status `json:"overall"`
	OK         int    `json:"ok"`
	Warn       int    `json:"warn"`
	Error      int    `json:"error"`
	NotChecked int    `json:"not_checked"`
}

// Report is the whole answer of doctor --json and GET /admin/doctor.
type Report struct {
	Summary Summary  `json:"summary"`
	Checks  []Result `json:"checks"`
}

// Failed reports whether some check is an error: the only case where doctor exits non-zero.
func (r Report) Failed() bool { return r.Summary.Error > 0 }

// Check is one named check; Run returns its status, message and details (its Name is filled in by Run).
type Check struct {
	Name string
	Run  func(ctx context.Context) Result
}

// checkTimeout bounds each check, so one unreachable service cannot hang the whole report.
const checkTimeout = 10 * time.Second

// Run runs checks in order and summarises them. A check that panics is reported as an error, not a crash.
func Run(ctx context.Context, checks []Check) Report {
	rep := Report{Checks: make([]Result, 0, len(checks))}
	for _, c := range checks {
		res := runOne(ctx, c)
		rep.Checks = append(rep.Checks, res)
	}
	rep.Summary = summarise(rep.Checks)
	return rep
}

func runOne(ctx context.Context, c Check) (res Result) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			res = Result{Status: Error, Message: fmt.Sprintf("the check failed unexpectedly: %v", p)}
		}
		res.Name = c.Name
		if res.Details == nil {
			res.Details = map[string]any{}
		}
		if res.Status == "" {
			res.Status = NotChecked
		}
	}()
	return c.Run(ctx)
}

func summarise(rs []Result) Summary {
	var s Summary
	for _, r := range rs {
		switch r.Status {
		case OK:
			s.OK++
		case Warn:
			s.Warn++
		case Error:
			s.Error++
		default:
			s.NotChecked++
		}
	}
	switch {
	case s.Error > 0:
		s.Overall = Error
	case s.Warn > 0:
		s.Overall = Warn
	default:
		s.Overall = OK
	}
	return s
}

// WriteJSON writes the report in its stable JSON shape.
func WriteJSON(w io.Writer, r Report) error {
	if r.Checks == nil {
		r.Checks = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes one line per check and a summary line; colour adds ANSI colours to the statuses.
func WriteText(w io.Writer, r Report, colour bool) error {
	paint := func(s Status) string {
		label := fmt.Sprintf("%-11s", s)
		if !colour {
			return label
		}
		code := map[Status]string{OK: "32", Warn: "33", Error: "31"}[s]
		if code == "" {
			code = "90"
		}
		return "\x1b[" + code + "m" + label + "\x1b[0m"
	}
	for _, c := range r.Checks {
		if _, err := fmt.Fprintf(w, "%s %-18s %s\n", paint(c.Status), c.Name, c.Message); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "\n%s: %d ok, %d warn, %d error, %d not checked\n", r.Summary.Overall,
		r.Summary.OK, r.Summary.Warn, r.Summary.Error, r.Summary.NotChecked)
	return err
}

func ok(msg string, details map[string]any) Result {
	return Result{Status: OK, Message: msg, Details: details}
}
func warn(msg string, details map[string]any) Result {
	return Result{Status: Warn, Message: msg, Details: details}
}
func fail(msg string, details map[string]any) Result {
	return Result{Status: Error, Message: msg, Details: details}
}
func notChecked(reason string) Result { return Result{Status: NotChecked, Message: reason} }
