package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressBar shows a command's progress on a terminal (schollz/progressbar, redrawn in place a few times a
// second). On anything else (a pipe, a log file, CI) it shows nothing: the command's summary line says what was
// done, and a log gets no half-drawn lines.
type progressBar struct {
	bar   *progressbar.ProgressBar // nil when w is not a terminal
	total int64
}

// newProgressBar starts a bar for total units (bytes when bytes is set, else records); total < 0 is unknown.
func newProgressBar(w io.Writer, label string, total int64, bytes bool) *progressBar {
	p := &progressBar{total: total}
	if !isTerminal(w) {
		return p
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-8s", label)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts())
	}
	p.bar = progressbar.NewOptions64(total, opts...)
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Set reports progress; done may reach total.
func (p *progressBar) Set(done int64) {
	if p.bar != nil {
		_ = p.bar.Set64(done) // drawing errors are the terminal's; the command's work goes on
	}
}

// Done draws the final state and ends the line.
func (p *progressBar) Done(done int64) {
	if p.bar == nil {
		return
	}
	if p.total < 0 {
		p.bar.ChangeMax64(done)
	}
	_ = p.bar.Set64(done)
	_ = p.bar.Finish()
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
