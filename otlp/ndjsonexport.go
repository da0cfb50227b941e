package otlp

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// ExportOptions select what ExportNDJSON writes. Since and Until are on the receive time (detritus names a file
// after the UTC day it wrote the line) and are rounded out to whole UTC days, so every file written is complete.
type ExportOptions struct {
	Project string
	Since   time.Time // zero: from the first record
	Until   time.Time // zero: to the last one
}

// ExportStats counts what an export wrote.
type ExportStats struct {
	Files   int
	Records int64
}

// maxOpenExportFiles bounds the files an export keeps open; records come in storage order, so one source's days
// interleave with others' and a file may be closed and reopened (in append mode) many times.
const maxOpenExportFiles = 64

// ExportNDJSON writes the stored log records into dir in detritus' layout (spec §4): logs/<project>/<install_id>/
// <YYYY-MM-DD>.ndjson, one line per record in the order they were stored, the day being the UTC day received.
// Each file is written beside its final name and renamed into place once the whole export succeeded, so a failed
// export leaves the files of an earlier one as they were; a file it writes replaces the one that was there.
func ExportNDJSON(ctx context.Context, logs lodestone.LogScanner, dir string, o ExportOptions) (ExportStats, error) {
	var st ExportStats
	scan := lodestone.LogScan{Project: o.Project, Limit: lodestone.MaxListLimit}
	if !o.Since.IsZero() {
		scan.Since = o.Since.UTC().Truncate(24 * time.Hour)
	}
	if !o.Until.IsZero() {
		u := o.Until.UTC()
		if t := u.Truncate(24 * time.Hour); !t.Equal(u) {
			u = t.Add(24 * time.Hour)
		}
		scan.Until = u
	}
	w := &exportFiles{dir: dir, open: map[string]*exportFile{}, written: map[string]bool{}}
	defer w.abort()
	var line []byte
	for {
		page, err := logs.ScanLogs(ctx, scan)
		if err != nil {
			return st, fmt.Errorf("export logs: %w", err)
		}
		for _, r := range page {
			rel, err := NDJSONPath(r.Project, r.DeviceID, r.ReceivedAt.UTC().Format(time.DateOnly))
			if err != nil {
				return st, fmt.Errorf("export log record %d: %w", r.ID, err)
			}
			if line, err = AppendNDJSON(line[:0], r); err != nil {
				return st, fmt.Errorf("export log record %d: stored JSON: %w", r.ID, err)
			}
			if err := w.write(rel, line); err != nil {
				return st, err
			}
			st.Records++
		}
		if len(page) < scan.Limit {
			break
		}
		scan.AfterID = page[len(page)-1].ID
	}
	n, err := w.commit()
	st.Files = n
	return st, err
}

type exportFile struct {
	f   *os.File
	buf *bufio.Writer
	use int64
}

type exportFiles struct {
	dir     string
	open    map[string]*exportFile
	written map[string]bool // relative paths whose temporary file exists
	clock   int64
}

func (w *exportFiles) tmp(rel string) string {
	return filepath.Join(w.dir, filepath.FromSlash(rel)) + ".tmp"
}

func (w *exportFiles) write(rel string, line []byte) error {
	w.clock++
	ef, ok := w.open[rel]
	if !ok {
		if len(w.open) >= maxOpenExportFiles {
			if err := w.closeOldest(); err != nil {
				return err
			}
		}
		path := w.tmp(rel)
		flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
		if !w.written[rel] {
			flags |= os.O_TRUNC
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("export logs: %w", err)
			}
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if err != nil {
			return fmt.Errorf("export logs: %w", err)
		}
		w.written[rel] = true
		ef = &exportFile{f: f, buf: bufio.NewWriterSize(f, 64<<10)}
		w.open[rel] = ef
	}
	ef.use = w.clock
	if _, err := ef.buf.Write(line); err != nil {
		return fmt.Errorf("export logs: write %s: %w", rel, err)
	}
	return nil
}

func (w *exportFiles) closeOldest() error {
	var oldest string
	var at int64 = -1
	for rel, ef := range w.open {
		if at < 0 || ef.use < at {
			oldest, at = rel, ef.use
		}
	}
	return w.close(oldest, false)
}

func (w *exportFiles) close(rel string, sync bool) error {
	ef := w.open[rel]
	delete(w.open, rel)
	err := ef.buf.Flush()
	if err == nil && sync {
		err = ef.f.Sync()
	}
	if cerr := ef.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export logs: write %s: %w", rel, err)
	}
	return nil
}

// commit flushes, fsyncs and renames every file into place.
func (w *exportFiles) commit() (int, error) {
	for rel := range w.open {
		if err := w.close(rel, false); err != nil {
			return 0, err
		}
	}
	rels := make([]string, 0, len(w.written))
	for rel := range w.written {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		f, err := os.OpenFile(w.tmp(rel), os.O_RDWR, 0)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			return 0, fmt.Errorf("export logs: sync %s: %w", rel, err)
		}
	}
	for _, rel := range rels {
		final := filepath.Join(w.dir, filepath.FromSlash(rel))
		if err := os.Rename(w.tmp(rel), final); err != nil {
			return 0, fmt.Errorf("export logs: %w", err)
		}
		delete(w.written, rel)
	}
	return len(rels), nil
}

// abort removes the temporary files of an export that failed.
func (w *exportFiles) abort() {
	for rel, ef := range w.open {
		ef.f.Close()
		delete(w.open, rel)
	}
	for rel := range w.written {
		os.Remove(w.tmp(rel))
	}
}
