package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// TestMain runs the suite with every server's handler recorded (observeResponses): each response is checked
// against the OpenAPI document of the server that answered it, and the run fails when one does not match or
// comes from a route without metadata. Only what the selected tests produce is checked.
func TestMain(m *testing.M) {
	rec := newResponseChecker()
	observeResponses = rec.wrap
	code := m.Run()
	if failures := rec.finish(); len(failures) > 0 {
		fmt.Fprintf(os.Stderr, "\nOpenAPI: %d responses of the test suite do not match the API description "+
			"(httpapi/openapi_routes.go, openapi_types.go):\n", len(failures))
		for _, f := range failures {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		code = 1
	} else if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "OpenAPI: %d responses checked against the API description\n", rec.checked)
		if missed := rec.unexercised(); len(missed) > 0 && flag.Lookup("test.run").Value.String() == "" {
			fmt.Fprintf(os.Stderr, "OpenAPI: no success response of these routes was checked: %s\n",
				strings.Join(missed, ", "))
		}
	}
	os.Exit(code)
}

// maxChecksPerKey bounds the responses checked per route and status, so load-style tests cost little.
const maxChecksPerKey = 100

// maxRecordedBody is the most of a JSON body kept for checking; larger bodies are checked up to their status.
const maxRecordedBody = 8 << 20

type recorded struct {
	srv     *Server
	pattern string
	method  string
	req     *http.Request
	status  int
	header  http.Header
	body    []byte
	cut     bool // the body was larger than maxRecordedBody
}

type responseChecker struct {
	queue chan recorded
	done  chan struct{}

	mu       sync.Mutex
	seen     map[string]int         // pattern+status -> responses queued
	docs     map[string]*openapi3.T // by the document's bytes: servers with one configuration share it
	failures map[string]struct{}    // deduplicated messages
	checked  int
}

func newResponseChecker() *responseChecker {
	c := &responseChecker{queue: make(chan recorded, 256), done: make(chan struct{}), seen: map[string]int{},
		docs: map[string]*openapi3.T{}, failures: map[string]struct{}{}}
	go c.run()
	return c
}

func (c *responseChecker) run() {
	defer close(c.done)
	for r := range c.queue {
		if msg := c.check(r); msg != "" {
			c.mu.Lock()
			c.failures[msg] = struct{}{}
			c.mu.Unlock()
		}
	}
}

// unexercised lists the described routes that answered no 2xx in this run.
func (c *responseChecker) unexercised() []string {
	ok := map[string]bool{}
	for key := range c.seen {
		i := strings.LastIndexByte(key, ' ')
		if key[i+1] == '2' {
			ok[key[:i]] = true
		}
	}
	var out []string
	for _, p := range RouteDocPatterns() {
		if !ok[p] {
			out = append(out, p)
		}
	}
	return out
}

func (c *responseChecker) finish() []string {
	close(c.queue)
	<-c.done
	out := make([]string, 0, len(c.failures))
	for f := range c.failures {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// wrap records what h answers to each request that reaches a registered route.
func (c *responseChecker) wrap(s *Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux := s.mux
		if isDDIPath(r.URL.Path) {
			mux = s.ddiMux // hawkBit DDI routes live on their own mux (ddi_auth.go)
		}
		_, pattern := mux.Handler(r)
		if pattern == "" { // 404 and 405 of no route: not in the description
			h.ServeHTTP(w, r)
			return
		}
		rw := &recordingWriter{ResponseWriter: w}
		req := r.Clone(context.Background())
		var reqBody *bytes.Buffer
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" && r.Body != nil {
			reqBody = &bytes.Buffer{}
			r.Body = teeBody{r.Body, io.TeeReader(r.Body, cappedWriter{reqBody})}
		}
		h.ServeHTTP(rw, r)
		if reqBody != nil {
			req.Body = io.NopCloser(bytes.NewReader(reqBody.Bytes()))
		} else {
			req.Body = http.NoBody
		}
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		if rw.status == http.StatusMovedPermanently || rw.status == http.StatusTemporaryRedirect ||
			rw.status == http.StatusPermanentRedirect {
			return // the mux's redirect to a clean path, not the route's answer
		}
		key := pattern + " " + strconv.Itoa(rw.status)
		c.mu.Lock()
		c.seen[key]++
		n := c.seen[key]
		c.mu.Unlock()
		if n > maxChecksPerKey {
			return
		}
		c.queue <- recorded{srv: s, pattern: pattern, method: r.Method, req: req, status: rw.status,
			header: rw.header, body: rw.body.Bytes(), cut: rw.cut}
	})
}

// teeBody copies what the handler reads of a JSON request body.
type teeBody struct {
	io.Closer
	r io.Reader
}

func (t teeBody) Read(p []byte) (int, error) { return t.r.Read(p) }

// cappedWriter keeps the first maxRecordedBody bytes and drops the rest, so the handler still reads it all.
type cappedWriter struct{ b *bytes.Buffer }

func (c cappedWriter) Write(p []byte) (int, error) {
	if room := maxRecordedBody - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// recordingWriter keeps the status, the headers as sent and a JSON body.
type recordingWriter struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
	json   bool
	cut    bool
	n      int64
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.header = w.ResponseWriter.Header().Clone()
		mt, _, _ := mime.ParseMediaType(w.header.Get("Content-Type"))
		w.json = mt == "application/json"
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.n += int64(len(b))
	if w.json && !w.cut {
		if w.body.Len()+len(b) > maxRecordedBody {
			w.cut = true
		} else {
			w.body.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// strictDocument is s's document as the tests read it: objects generated from Go structs allow no other
// properties, so a response field missing from the description fails the check.
func strictDocument(s *Server) ([]byte, error) {
	raw, err := json.Marshal(s.OpenAPI())
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	closeObjects(doc)
	return json.Marshal(doc)
}

func closeObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"]; ok && v["type"] == "object" {
			if _, set := v["additionalProperties"]; !set {
				v["additionalProperties"] = false
			}
		}
		// kin-openapi checks schemas with references by its OpenAPI 3.0 rules, where the empty schema refuses
		// null; say "any JSON value" in a way both read alike.
		for _, k := range []string{"additionalProperties", "items"} {
			if m, ok := v[k].(map[string]any); ok && len(m) == 0 {
				v[k] = anyValue()
			}
		}
		if props, ok := v["properties"].(map[string]any); ok {
			for k, p := range props {
				if m, ok := p.(map[string]any); ok && len(m) == 0 {
					props[k] = anyValue()
				}
			}
		}
		for _, c := range v {
			closeObjects(c)
		}
	case []any:
		for _, c := range v {
			closeObjects(c)
		}
	}
}

func anyValue() map[string]any {
	return map[string]any{"type": []any{"null", "boolean", "object", "array", "number", "string"}}
}

func loadDocument(data []byte) (*openapi3.T, error) {
	// Decoding as JSON, not through LoadFromData: its YAML parser is slow on one long JSON line.
	doc := &openapi3.T{}
	if err := json.Unmarshal(data, doc); err != nil {
		return nil, err
	}
	if err := openapi3.NewLoader().ResolveRefsIn(doc, nil); err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return doc, nil
}

// document is s's strict document, loaded once per route table: servers with one configuration share it.
func (c *responseChecker) document(s *Server) (*openapi3.T, error) {
	var key strings.Builder
	for _, r := range s.table {
		key.WriteString(r.Pattern + " " + r.Access.String() + "\n")
	}
	c.mu.Lock()
	doc, ok := c.docs[key.String()]
	c.mu.Unlock()
	if ok {
		return doc, nil
	}
	data, err := strictDocument(s)
	if err != nil {
		return nil, err
	}
	if doc, err = loadDocument(data); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.docs[key.String()] = doc
	c.mu.Unlock()
	return doc, nil
}

// check returns what is wrong with one response, or "".
func (c *responseChecker) check(r recorded) string {
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
	where := fmt.Sprintf("%s (%s %s) answered %d", r.pattern, r.method, r.req.URL.RequestURI(), r.status)
	if _, ok := routeDocs[r.pattern]; !ok {
		return r.pattern + ": registered route without metadata in routeDocs (openapi_routes.go)"
	}
	doc, err := c.document(r.srv)
	if err != nil {
		return "the OpenAPI document does not load: " + err.Error()
	}
	method, path, _ := strings.Cut(r.pattern, " ")
	item := doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil {
		return where + ": no operation in the document"
	}
	op := item.GetOperation(method)
	ref := op.Responses.Status(r.status)
	if ref == nil && r.status < 400 {
		return where + ": a success status the route's metadata does not list"
	}
	if ref == nil {
		ref = op.Responses.Default()
	}
	resp := ref.Value
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if len(resp.Content) == 0 {
		if r.header.Get("Content-Type") != "" && r.status != http.StatusNoContent {
			return fmt.Sprintf("%s: Content-Type %q where the description has no body", where, mt)
		}
		return ""
	}
	media := resp.Content.Get(r.header.Get("Content-Type"))
	if media == nil {
		return fmt.Sprintf("%s: Content-Type %q is not described (have %v)", where, mt, slices.Sorted(maps.Keys(resp.Content)))
	}
	if mt != "application/json" || r.method == http.MethodHead || r.cut {
		return "" // streams, downloads and text: the content type is the contract
	}
	reqIn := &openapi3filter.RequestValidationInput{Request: r.req, PathParams: pathValues(path, r.req.URL.Path),
		Route: &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}}
	if r.status >= 200 && r.status < 300 {
		// A request the route accepted must match its described parameters and body: the MCP tools build
		// their input schemas from the same metadata.
		reqMT, _, _ := mime.ParseMediaType(r.req.Header.Get("Content-Type"))
		reqIn.Options = &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError: true, ExcludeRequestBody: reqMT != "application/json" || op.RequestBody == nil ||
				op.RequestBody.Value.Content["application/json"] == nil}
		if err := openapi3filter.ValidateRequest(context.Background(), reqIn); err != nil {
			return fmt.Sprintf("%s: the accepted request does not match the description: %v", where, oneLine(err.Error()))
		}
		reqIn.Options = nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn,
		Status:                 r.status,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader(r.body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		body := string(r.body)
		if len(body) > 600 {
			body = body[:600] + "..."
		}
		return fmt.Sprintf("%s: %v\n      body: %s", where, oneLine(err.Error()), strings.TrimSpace(body))
	}
	return ""
}

// pathValues matches a request path against an OpenAPI path template.
func pathValues(template, path string) map[string]string {
	out := map[string]string{}
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	for i, t := range ts {
		if strings.HasPrefix(t, "{") && i < len(ps) {
			out[strings.Trim(t, "{}.")] = ps[i]
		}
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 1200 {
		s = s[:1200] + "..."
	}
	return s
}
