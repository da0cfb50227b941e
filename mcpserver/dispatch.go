package mcpserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// maxAnswer bounds one route's answer that a tool passes on: an agent reads it whole.
const maxAnswer = 4 << 20

// Caller sends one request to the API and returns its status and JSON body.
type Caller interface {
	Call(ctx context.Context, method, target string, body []byte) (status int, answer []byte, err error)
}

// InProcess calls the API's own handler in this process, as the principal in ctx: the handler's guard checks
// that principal's role against the route, and the audit middleware sees an MCP request.
type InProcess struct{ Handler http.Handler }

// Call implements Caller.
func (c InProcess) Call(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	if lodestone.PrincipalFromContext(ctx) == nil {
		return 0, nil, lodestone.Errorf(lodestone.EUNAUTHORIZED, "no caller for an in-process API call")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://lodestone.internal"+target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("mcp: build %s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ar := lodestone.AuditRequestFromContext(ctx)
	req.RemoteAddr = "127.0.0.1:0" // this process; the audit request in ctx names the MCP client
	if ar.RequestID != "" {
		req.Header.Set("X-Request-Id", ar.RequestID) // the inner request logs under the MCP request's id
	}
	rec := &recorder{header: http.Header{}}
	c.Handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.overflow {
		return 0, nil, lodestone.Errorf(lodestone.EINVALID,
			"the answer of %s %s is larger than %d MiB: narrow it with limit or filters", method, target, maxAnswer>>20)
	}
	return rec.status, rec.body.Bytes(), nil
}

// recorder keeps a handler's answer in memory, up to maxAnswer.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > maxAnswer {
		r.overflow = true
		return 0, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	return r.body.Write(b)
}

// Remote calls a running lodestone over HTTP with an API token.
type Remote struct {
	Server     string       // base URL
	Token      string       // API token, sent as Bearer
	User, Pass string       // Basic credentials when there is no token
	Client     *http.Client // nil: a client with a 60 s timeout
}

// Call implements Caller.
func (c Remote) Call(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Server, "/")+target, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("mcp: build %s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	case c.Pass != "":
		req.SetBasicAuth(c.User, c.Pass)
	}
	hc := c.Client
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, nil, lodestone.Errorf(lodestone.EUNAVAILABLE, "%s %s: read answer: %v", method, target, err)
	}
	if len(raw) > maxAnswer {
		return 0, nil, lodestone.Errorf(lodestone.EINVALID,
			"the answer of %s %s is larger than %d MiB: narrow it with limit or filters", method, target, maxAnswer>>20)
	}
	return resp.StatusCode, raw, nil
}
