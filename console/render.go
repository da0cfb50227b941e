package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// pageData is what the layout needs around a page's own Data.
type pageData struct {
	Title string
	Nav   string // the nav entry to mark current
	User  *lodestone.Principal
	CSRF  string
	Flash *flash
	Live  bool // the page subscribes to live events (its script reads data-live attributes)
	Chart bool // the page loads the chart script
	Data  any
}

// Can reports whether the signed-in user holds role (by name) — the page shows write controls only then.
func (p *pageData) Can(role string) bool {
	r, _ := lodestone.ParseRole(role)
	return p.User.Allows(r)
}

var basePages = []string{"login", "error", "overview", "devices", "device", "faults", "crashes", "crash",
	"metrics", "fleet"}

// pageNames is every page: part 1's and each area's own list (declared beside its handlers).
var pageNames = concat(basePages, updatesPages, logsPages, groupsPages, adminPages, morePages)

func concat(lists ...[]string) []string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html",
			"templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console: parse template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// render writes a page. It renders into a buffer first, so a template error is a clean 500, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, pd *pageData) {
	if pd.Flash == nil && r.Method == http.MethodGet {
		pd.Flash = c.takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, pd); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeJSONBody(w io.Writer, v any) { json.NewEncoder(w).Encode(v) }

var funcs = template.FuncMap{
	"iso":   func(t any) string { return asTime(t).UTC().Format(time.RFC3339) },
	"exact": func(t any) string { return asTime(t).UTC().Format("2006-01-02 15:04:05 UTC") },
	"ago":   func(t any) string { return ago(asTime(t)) },
	"list":  func(s ...string) []string { return s },
	"hex32": func(v uint32) string { return fmt.Sprintf("0x%08X", v) },
	"faultType": func(t uint8) string {
		if int(t) < len(faultTypes) {
			return faultTypes[t]
		}
		return fmt.Sprintf("fault type %d", t)
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"tags": func(s *string) []string {
		if s == nil {
			return nil
		}
		return lodestone.SplitTags(*s)
	},
	"pct": func(part, whole int64) int64 {
		if whole <= 0 {
			return 0
		}
		return part * 100 / whole
	},
	"add":          func(a, b int) int { return a + b },
	"rebootReason": chunk.RebootReasonName,
	"join":         strings.Join,
	"bytes":        func(b []byte) int { return len(b) },
}

var faultTypes = []string{"HardFault", "MemManage", "BusFault", "UsageFault"}

// ago is a short relative time; pages show it with the exact time on hover.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// asTime accepts a time or a pointer to one (optional times are pointers).
func asTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}
