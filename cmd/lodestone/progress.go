package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws one line of progress on a terminal, redrawn in place at most ten times a second; on anything
// else (a log file, CI) it prints a line every few seconds instead, so logs stay readable.
type progressBar struct {
	w      io.Writer
	label  string
	total  int64
	format func(int64) string
	tty    bool
	start  time.Time
	last   time.Time
	drawn  int64 // the value last drawn; -1 before the first
}

func newProgressBar(w io.Writer, label string, total int64, format func(int64) string) *progressBar {
	if format == nil {
		format = func(n int64) string { return fmt.Sprint(n) }
	}
	return &progressBar{w: w, label: label, total: total, format: format, tty: isTerminal(w), start: time.Now(),
		drawn: -1}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Set reports progress; done may reach total.
func (p *progressBar) Set(done int64) {
	every := 3 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if done < p.total && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.draw(done)
}

func (p *progressBar) draw(done int64) {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	fill := int(frac * width)
	line := fmt.Sprintf("%-10s [%s%s] %3.0f%%  %s / %s  %s", p.label, strings.Repeat("=", fill),
		strings.Repeat(" ", width-fill), frac*100, p.format(done), p.format(p.total),
		time.Since(p.start).Round(100*time.Millisecond))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.drawn = done
}

// Done draws the final state and ends the line.
func (p *progressBar) Done(done int64) {
	if p.drawn != done {
		p.draw(done)
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// bytesize formats a byte count for people.
func bytesize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// jsonOut prints v as one line of JSON for scripts; URLs keep their & and = unescaped.
func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
