package console

import (
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// streamedFunc handles a multipart upload whose csrf field was checked; mr is at the part after it.
type streamedFunc func(w http.ResponseWriter, r *request, mr *multipart.Reader) error

// streamed is user for uploads of up to hundreds of MiB: the body is read part by part, the file straight into
// the blob store, never whole into memory or a temporary file (user's form parsing would, with a 4 MiB limit).
// The form must send its csrf field first, so the token is checked before any file byte is stored. A request
// from the page's script (X-Requested-With) gets the redirect as JSON, so the script can follow it and the page
// it lands on still shows the flash.
func (c *Console) streamed(need lodestone.Role, h streamedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
			w = &xhrWriter{ResponseWriter: w}
		}
		sess, secret, err := c.session(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if sess == nil {
			c.fail(w, r, nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "sign in first"))
			return
		}
		p := &lodestone.Principal{Name: sess.UserName, Role: sess.Role}
		req := &request{sess: sess, user: p, csrf: csrfToken(secret)}
		if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(r, o) {
			c.fail(w, r, req, lodestone.Errorf(lodestone.EFORBIDDEN, "this form was sent from another site (%s)", o))
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			c.fail(w, r, req, lodestone.Errorf(lodestone.EINVALID, "send the upload as a multipart form"))
			return
		}
		tok, name, err := readField(mr, 256)
		if err != nil || name != "csrf" || !equalTokens(tok, req.csrf) {
			c.fail(w, r, req, lodestone.Errorf(lodestone.EFORBIDDEN,
				"the form's security token is missing or stale; reload the page and try again"))
			return
		}
		if !p.Allows(need) {
			c.fail(w, r, req, lodestone.Errorf(lodestone.EFORBIDDEN, "your role (%s) may not do this; %s or admin may",
				p.Role, need))
			return
		}
		// A large image over a slow link outlasts the server's read timeout, as on POST /ota/firmware.
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(30 * time.Minute))
		rc.SetWriteDeadline(time.Now().Add(30 * time.Minute))
		ctx := lodestone.NewContextWithPrincipal(r.Context(), p)
		ctx = lodestone.NewContextWithAuditRequest(ctx, lodestone.AuditRequest{ClientAddr: httpapi.ClientIP(ctx),
			RequestID: httpapi.RequestID(ctx), Via: lodestone.ViaConsole})
		req.Request = r.WithContext(ctx)
		if err := h(w, req, mr); err != nil {
			c.fail(w, req.Request, req, err)
		}
	}
}

// readField reads the next part as a form field of at most max bytes and returns its value and name.
func readField(mr *multipart.Reader, max int64) (value, name string, err error) {
	p, err := mr.NextPart()
	if err != nil {
		return "", "", err
	}
	defer p.Close()
	if p.FileName() != "" {
		return "", p.FormName(), errors.New("a file where a field was expected")
	}
	b, err := io.ReadAll(io.LimitReader(p, max+1))
	if err != nil {
		return "", "", err
	}
	if int64(len(b)) > max {
		return "", p.FormName(), lodestone.Errorf(lodestone.EINVALID, "the form field %s is over %d bytes",
			truncate(p.FormName(), 40), max)
	}
	return string(b), p.FormName(), nil
}

// uploadForm reads the fields before the file part (at most 16 of 4 KiB) and returns them with the file part,
// or a nil part when the form has none.
func uploadForm(mr *multipart.Reader) (map[string]string, *multipart.Part, error) {
	fields := map[string]string{}
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil, nil
		}
		if err != nil {
			return nil, nil, lodestone.Errorf(lodestone.EINVALID, "unreadable form: %v", err)
		}
		if p.FormName() == "file" {
			return fields, p, nil
		}
		if i >= 16 {
			return nil, nil, lodestone.Errorf(lodestone.EINVALID, "too many form fields")
		}
		b, err := io.ReadAll(io.LimitReader(p, 4097))
		p.Close()
		if err != nil {
			return nil, nil, lodestone.Errorf(lodestone.EINVALID, "unreadable form: %v", err)
		}
		if len(b) > 4096 {
			return nil, nil, lodestone.Errorf(lodestone.EINVALID, "the form field %s is over 4096 bytes",
				truncate(p.FormName(), 40))
		}
		fields[p.FormName()] = string(b)
	}
}

// xhrWriter turns the console's POST → 303 redirect into a JSON answer naming where to go, for the upload
// script; the flash cookie travels with it, so the page the script then opens shows the outcome.
type xhrWriter struct {
	http.ResponseWriter
	wrote bool
}

func (x *xhrWriter) WriteHeader(code int) {
	if x.wrote {
		return
	}
	x.wrote = true
	h := x.Header()
	if code == http.StatusSeeOther {
		loc := h.Get("Location")
		h.Del("Location")
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		x.ResponseWriter.WriteHeader(http.StatusOK)
		json.NewEncoder(x.ResponseWriter).Encode(map[string]string{"location": loc})
		return
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *xhrWriter) Write(b []byte) (int, error) {
	if !x.wrote {
		x.WriteHeader(http.StatusOK)
	}
	return x.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flushes).
func (x *xhrWriter) Unwrap() http.ResponseWriter { return x.ResponseWriter }

// validLabel accepts what the API accepts in a version or signer: 1-max visible characters without quotes,
// slashes or backslashes, so it can sit in a file name and a Content-Disposition header as it is.
func validLabel(v string, maxLen int) bool {
	if v == "" || len(v) > maxLen {
		return false
	}
	for _, ch := range v {
		if ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' || ch == '/' {
			return false
		}
	}
	return true
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return itoa(n) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	whole := n / div
	tenth := (n % div) * 10 / div
	return itoa(whole) + "." + itoa(tenth) + " " + string("KMGTPE"[exp]) + "iB"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
