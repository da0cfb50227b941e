package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

type crashUploadsView struct {
	Uploads []*lodestone.CrashUpload
	Project string
	Install string
	Page    int
	Prev    string
	Next    string
}

const uploadsPerPage = 50

func (c *Console) uploadStore() (lodestone.CrashUploadStore, error) {
	if c.cfg.Logs.Uploads == nil {
		return nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not take crash uploads")
	}
	return c.cfg.Logs.Uploads, nil
}

// crashUploads lists detritus crash uploads, newest first, by project and install id.
func (c *Console) crashUploads(w http.ResponseWriter, r *request) error {
	us, err := c.uploadStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	v := crashUploadsView{Project: strings.TrimSpace(q.Get("project")),
		Install: strings.ToLower(strings.TrimSpace(q.Get("install_id"))), Page: 1}
	if len(v.Project) > 256 || len(v.Install) > 64 {
		return lodestone.Errorf(lodestone.EINVALID, "project is at most 256 bytes and an install id 36 characters")
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return lodestone.Errorf(lodestone.EINVALID, "page must be a number from 1")
		}
		v.Page = n
	}
	ups, err := us.FindCrashUploads(r.ctx(), lodestone.CrashUploadFilter{Project: v.Project, InstallID: v.Install,
		Limit: uploadsPerPage + 1, Offset: (v.Page - 1) * uploadsPerPage})
	if err != nil {
		return err
	}
	link := func(p int) string {
		n := url.Values{"page": {strconv.Itoa(p)}}
		if v.Project != "" {
			n.Set("project", v.Project)
		}
		if v.Install != "" {
			n.Set("install_id", v.Install)
		}
		return "/ui/crash-uploads?" + n.Encode()
	}
	if len(ups) > uploadsPerPage {
		ups = ups[:uploadsPerPage]
		v.Next = link(v.Page + 1)
	}
	if v.Page > 1 {
		v.Prev = link(v.Page - 1)
	}
	v.Uploads = ups
	c.page(w, r, "crashuploads", "Crash uploads", v, logsNav)
	return nil
}

type attachmentView struct {
	N    int
	Att  lodestone.CrashAttachment
	Size string
}

type crashUploadView struct {
	Upload      *lodestone.CrashUpload
	Metadata    string // indented JSON
	PanicText   string
	DumpSize    string
	Attachments []attachmentView
}

func (c *Console) findUpload(r *request) (*lodestone.CrashUpload, error) {
	us, err := c.uploadStore()
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "no crash upload %q", truncate(r.PathValue("id"), 40))
	}
	ups, err := us.FindCrashUploads(r.ctx(), lodestone.CrashUploadFilter{ID: id, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "no crash upload %d (expired uploads are removed)", id)
	}
	return ups[0], nil
}

func (c *Console) crashUpload(w http.ResponseWriter, r *request) error {
	u, err := c.findUpload(r)
	if err != nil {
		return err
	}
	v := crashUploadView{Upload: u, DumpSize: uploadSize(u.Dump.Size), Metadata: u.Metadata}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(u.Metadata), "", "  ") == nil {
		v.Metadata = buf.String()
	}
	var md struct {
		PanicText string `json:"panic_text"`
	}
	if json.Unmarshal([]byte(u.Metadata), &md) == nil {
		v.PanicText = md.PanicText
	}
	for i, a := range u.Attachments {
		v.Attachments = append(v.Attachments, attachmentView{N: i + 1, Att: a, Size: uploadSize(a.Blob.Size)})
	}
	c.page(w, r, "crashupload", fmt.Sprintf("Crash upload %d", u.ID), v, logsNav)
	return nil
}

// crashUploadDump downloads an upload's dump as stored (compressed when the client sent it so).
func (c *Console) crashUploadDump(w http.ResponseWriter, r *request) error {
	u, err := c.findUpload(r)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("crash-%d-%s.dump%s", u.ID, strings.ToLower(downloadName(u.Kind)),
		uploadEncodingSuffix(u.DumpEncoding))
	return c.serveUploadBlob(w, r, u.Dump.SHA256, name)
}

// crashUploadAttachment downloads attachment n (from 1, in upload order). The file is named after the file name
// the metadata gives it or its key, made safe; nothing from the request names a path.
func (c *Console) crashUploadAttachment(w http.ResponseWriter, r *request) error {
	u, err := c.findUpload(r)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > len(u.Attachments) {
		return lodestone.Errorf(lodestone.ENOTFOUND, "crash upload %d has no attachment %q", u.ID,
			truncate(r.PathValue("n"), 20))
	}
	a := u.Attachments[n-1]
	name := downloadName(a.Key)
	// The client's metadata may name the file the attachment came from; that name (made safe) is kinder.
	var md struct {
		Attachments []struct {
			Key      string `json:"key"`
			Filename string `json:"filename"`
		} `json:"attachments"`
	}
	if json.Unmarshal([]byte(u.Metadata), &md) == nil {
		for _, m := range md.Attachments {
			if m.Key == a.Key && m.Filename != "" {
				name = downloadName(m.Filename)
				break
			}
		}
	}
	return c.serveUploadBlob(w, r, a.Blob.SHA256, name+uploadEncodingSuffix(a.ContentEncoding))
}

// serveUploadBlob sends a stored blob as a download: never rendered by the browser (the bytes are a client's), with
// range requests from the blob store's seeker.
func (c *Console) serveUploadBlob(w http.ResponseWriter, r *request, sha, name string) error {
	if c.cfg.Logs.Blobs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server has no blob store for crash uploads")
	}
	b, err := c.cfg.Logs.Blobs.Open(r.ctx(), sha)
	if err != nil {
		if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
			return lodestone.Errorf(lodestone.ENOTFOUND, "the file is no longer stored")
		}
		return err
	}
	defer b.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-cache")
	h.Set("ETag", `"`+sha+`"`)
	// A large dump outlives the server's write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	http.ServeContent(w, r.Request, "", b.ModTime(), b)
	return nil
}

// downloadName keeps a file name to letters, digits, '.', '-' and '_', at most 100 bytes; never empty.
func downloadName(s string) string {
	var sb strings.Builder
	for _, ch := range s {
		if sb.Len() >= 100 {
			break
		}
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
			sb.WriteRune(ch)
		case ch == '.' && sb.Len() > 0:
			sb.WriteRune(ch)
		default:
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "attachment"
	}
	return sb.String()
}

func uploadEncodingSuffix(enc string) string {
	switch strings.ToLower(enc) {
	case "zstd":
		return ".zst"
	case "gzip":
		return ".gz"
	case "br":
		return ".br"
	case "deflate":
		return ".zz"
	}
	return ""
}

func uploadSize(n int64) string {
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KiB"
	case n < 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
}
