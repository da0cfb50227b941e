package httpapi

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Route metadata for tools. The MCP server builds its tools from APIRoutes: per route the tool name
// (OperationID), title (Summary), description (Description, plus the access level), input schema (InputSchema:
// parameters and body as one object) and output schema (OutputSchema), and calls the route through the same
// handler chain, so access checks, audit and validation stay where they are. A route whose Access is above
// viewer changes state.

// RouteDoc is what lodestone says about one route beyond its pattern and access: the OpenAPI document
// (GET /openapi.json), `lodestone routes` and the MCP tools are all generated from it and from the Go types it
// names, so they cannot drift apart. The entries live in routeDocs (openapi_routes.go), keyed by the pattern
// exactly as registered with s.handle; a test fails when a registered route has none or an entry names no
// registered route.
type RouteDoc struct {
	// Summary is one line in the imperative, fit for a tool title ("List devices").
	Summary string
	// Description says what the route does, when to use it and what to watch for, for an operator or an AI
	// agent reading the tool list: side effects, idempotency, paging.
	Description string
	// Params are the query parameters and any path parameter worth a description or a type other than string;
	// path parameters of the pattern that are not listed are added as required strings.
	Params []Param
	// Body is the request body; nil for none.
	Body *Body
	// Responses are the answers with a shape of their own, each with its content type and Go type: the
	// successes, and any status whose body is not the error shape (a 304, a 416 of http.ServeContent).
	Responses []Reply
	// Errors are the error statuses this route answers on purpose (404 for an unknown id, 409, 422, ...), besides
	// the ones the generator adds: 400 with parameters or a body, 503, and 401, 403 and 429 on routes that need
	// credentials. Any other status is the "default" error. All use the route's error shape, except that the
	// access check's 401, 403 and 429 are ErrorBody (on a FerriteErrors route: either shape).
	Errors []int
	// FerriteErrors marks a route whose errors use ferrite's ingest answer ({"ok":false,...}) rather than
	// ErrorBody: gateways parse it.
	FerriteErrors bool
}

// Param is one path or query parameter.
type Param struct {
	Name        string
	In          string // "query" (default), "path" or "header"
	Description string
	Type        any  // a Go value of the parameter's type: "" (default), 0, true
	Required    bool // path parameters always are
	Enum        []string
	Example     any
}

// Body is a request body.
type Body struct {
	ContentType string // default application/json
	Type        any    // a Go value of the decoded type (JSON bodies); nil for binary
	Description string
	Example     any  // a Go value marshalled as the example
	Optional    bool // the route also takes no body at all
}

// Reply is one answer with its own shape (not the error shape). Two Replies with one status and different
// content types describe a route that answers either (JSON or text/event-stream, say).
type Reply struct {
	Status      int
	ContentType string // default application/json; "" with a nil Type and a 204 status means no body
	Type        any    // a Go value of the JSON written (nil: binary or text, described by ContentType)
	Description string
	Example     any
	Headers     map[string]string // response header name -> description
}

// APIRoute is a registered route with its metadata.
type APIRoute struct {
	Pattern string // as registered: "GET /devices/{id}"
	Method  string
	Path    string // the OpenAPI path: "/devices/{id}"
	Access  Access
	RouteDoc
}

// APIRoutes returns every registered API route (not the console's pages) with its metadata, in registration order. A route without an entry
// in routeDocs comes back with an empty Summary (the coverage test refuses that).
func (s *Server) APIRoutes() []APIRoute {
	out := make([]APIRoute, 0, len(s.table))
	for _, r := range s.table {
		if r.Access == AccessSession {
			continue // the web console's pages: HTML for a browser, not part of the API
		}
		method, path, _ := strings.Cut(r.Pattern, " ")
		d := routeDocs[r.Pattern]
		d.Params = withPathParams(path, d.Params)
		out = append(out, APIRoute{Pattern: r.Pattern, Method: method, Path: path, Access: r.Access, RouteDoc: d})
	}
	return out
}

// RouteDocPatterns returns the patterns that have metadata, sorted: the coverage test compares them with the
// registered routes.
func RouteDocPatterns() []string { return slices.Sorted(maps.Keys(routeDocs)) }

var pathParam = regexp.MustCompile(`\{([A-Za-z0-9_]+)(\.\.\.)?\}`)

// withPathParams adds the pattern's path parameters that params does not describe, as required strings, and
// marks the described ones path and required.
func withPathParams(path string, params []Param) []Param {
	out := slices.Clone(params)
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		i := slices.IndexFunc(out, func(p Param) bool { return p.Name == m[1] && (p.In == "path" || p.In == "") })
		if i < 0 {
			out = append(out, Param{Name: m[1], In: "path", Type: ""})
			continue
		}
		out[i].In, out[i].Required = "path", true
	}
	for i := range out {
		if out[i].In == "" {
			out[i].In = "query"
		}
	}
	return out
}

// InputSchema is one JSON Schema object for a tool call: the route's parameters as properties and its JSON
// body, if any, under "body".
func (r APIRoute) InputSchema() map[string]any {
	props := map[string]any{}
	var required []string
	for _, p := range r.Params {
		s := paramSchema(p, newSchemaGen(true))
		if p.Description != "" {
			s["description"] = p.Description
		}
		props[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	if r.Body != nil && r.Body.Type != nil {
		g := newSchemaGen(true)
		g.request = true
		props["body"] = g.schema(reflectType(r.Body.Type))
		required = append(required, "body")
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// OutputSchema is the self-contained schema of the route's first JSON success answer, or nil when it answers
// something else (a stream, a download, no body).
func (r APIRoute) OutputSchema() map[string]any {
	for _, rep := range r.Responses {
		if rep.Type != nil && mediaType(rep.ContentType) == "application/json" {
			return SchemaOf(rep.Type)
		}
	}
	return nil
}

// ErrorType is a Go value of the route's error shape.
func (r APIRoute) ErrorType() any {
	if r.FerriteErrors {
		return ingestResponse{}
	}
	return errorBody{}
}

func paramSchema(p Param, g *schemaGen) map[string]any {
	s := map[string]any{"type": "string"}
	if p.Type != nil {
		s = g.schema(reflectType(p.Type))
	}
	if len(p.Enum) > 0 {
		s["enum"] = p.Enum
	}
	return s
}

func mediaType(ct string) string {
	if ct == "" {
		return "application/json"
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(strings.ToLower(mt))
}

// authErrors are the statuses the access check answers before a route's handler runs: credentials missing or
// refused, a role too low, too many attempts. Every route but a public one may answer them, as ErrorBody.
func authErrors(a Access) []int {
	if a == AccessPublic {
		return nil
	}
	return []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests}
}
