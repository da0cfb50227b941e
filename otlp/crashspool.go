package otlp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"os"
	"strings"
)

// A part up to spoolMemBytes stays in memory while the request's parts together hold less than spoolMemTotal;
// anything else goes to a temporary file, so an upload of many attachments costs little memory.
const (
	spoolMemBytes = 64 << 10
	spoolMemTotal = 256 << 10
)

// spooledPart is one dump or attachment part, read in full from the client.
type spooledPart struct {
	name, enc, ctype string
	mem              []byte
	file             *os.File // set when the part outgrew spoolMemBytes
}

type spool []*spooledPart

// spoolParts reads every part after the metadata, checking names and counts as detritus does, into memory or
// temporary files under SpoolDir. The body's reads are bounded by the listener's read timeout; a body that
// times out is a 408.
func (s *Server) spoolParts(mr *multipart.Reader) (spool, *crashError) {
	var parts spool
	haveDump, attachments := false, 0
	memLeft := int64(spoolMemTotal)
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		} else if err != nil {
			return parts, bodyErr(err)
		}
		name := part.FormName()
		switch {
		case name == "":
			return parts, cerr(400, "bad request: multipart part is missing a name")
		case name == "metadata":
			return parts, cerr(400, "bad request: metadata part must appear exactly once")
		case name == "dump" && haveDump:
			return parts, cerr(400, "bad request: dump part must appear exactly once")
		case name != "dump" && !strings.HasPrefix(name, "attach:"):
			return parts, cerr(400, "bad request: unexpected part `%s`", truncate(name, 64))
		case name != "dump" && attachments >= s.cfg.MaxAttachments:
			return parts, cerr(413, "more than %d attachments", s.cfg.MaxAttachments)
		}
		if name == "dump" {
			haveDump = true
		} else {
			attachments++
		}
		if s.onPartSpooling != nil {
			s.onPartSpooling(name)
		}
		p := &spooledPart{name: name, enc: part.Header.Get("Content-Encoding"), ctype: part.Header.Get("Content-Type")}
		if p.ctype == "" {
			p.ctype = "application/octet-stream"
		}
		parts = append(parts, p)
		if e := s.spoolPart(p, part, min(spoolMemBytes, memLeft)); e != nil {
			return parts, e
		}
		memLeft -= int64(len(p.mem))
	}
}

// spoolPart copies one part, in memory when it is shorter than mem, refusing it once it holds more than
// MaxDumpBytes.
func (s *Server) spoolPart(p *spooledPart, r io.Reader, mem int64) *crashError {
	limit := s.cfg.MaxDumpBytes
	tooLarge := cerr(413, "payload exceeds maximum size of %d bytes", limit)
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, min(mem, limit+1)))
	if err != nil {
		return bodyErr(err)
	}
	if n > limit {
		return tooLarge
	}
	if n < mem {
		p.mem = buf.Bytes()
		return nil
	}
	f, err := os.CreateTemp(s.cfg.SpoolDir, "crash-upload-*")
	if err != nil {
		return s.storageErr("crash upload: spool", err)
	}
	p.file = f
	if _, err := f.Write(buf.Bytes()); err != nil {
		return s.storageErr("crash upload: spool", err)
	}
	src := &readErr{r: io.LimitReader(r, limit+1-n)}
	m, err := io.Copy(f, src)
	switch {
	case src.err != nil:
		return bodyErr(src.err)
	case err != nil:
		return s.storageErr("crash upload: spool", err)
	case n+m > limit:
		return tooLarge
	}
	return nil
}

// reader returns the part's bytes from the start.
func (p *spooledPart) reader() (io.Reader, error) {
	if p.file == nil {
		return bytes.NewReader(p.mem), nil
	}
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spool: %w", err)
	}
	return p.file, nil
}

// release removes the temporary files.
func (sp spool) release() {
	for _, p := range sp {
		if p.file != nil {
			p.file.Close()
			os.Remove(p.file.Name())
		}
	}
}

// bodyErr answers a failed read of the client's body: too large is a 413, a read that ran past the listener's
// read timeout a 408, anything else a malformed body.
func bodyErr(err error) *crashError {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return cerr(408, "request body not received in time")
	}
	return multipartErr(err)
}

// readErr remembers the error of the reader under it, so a failed copy can be blamed on the client's body or on
// the spool.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
