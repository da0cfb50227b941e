// Package mcpserver is lodestone's MCP server: tools over the HTTP API's routes for AI agents, served over
// streamable HTTP at POST /mcp and over stdio by 'lodestone mcp'. A tool call is a call of its route, in-process
// through the API's own handler or over HTTP to a running server, so it answers exactly what the API answers and
// is allowed exactly what the caller's role allows there. Writes take two steps with a confirmation token.
package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// Options configure a Server.
type Options struct {
	// Routes is the API's route table with its metadata ((*httpapi.Server).APIRoutes()): it gives each tool its
	// access, arguments and schemas; a tool without a route fails New.
	Routes []httpapi.APIRoute
	Caller Caller // how tool calls reach the API
	// Audit records every call (reads too) as an "mcp.<tool>" entry before the call runs; a failure to record
	// refuses the call. Nil records nothing: 'lodestone mcp --server' leaves the records to the server it calls.
	Audit lodestone.AuditLog
	// ReadOnly leaves the write tools out (a local database opened for reading).
	ReadOnly bool
	// Principal is the one caller of a stdio server; nil takes each call's caller from its context (the
	// authenticated principal of the HTTP request to /mcp).
	Principal *lodestone.Principal
	Version   string
	Logger    *slog.Logger
	Now       func() time.Time // default time.Now
}

// Server builds the MCP servers each role sees.
type Server struct {
	opts     Options
	tools    []bound
	confirms *confirmations
	byRole   map[lodestone.Role]*mcp.Server
}

// bound is a tool with what its route gives it: access, arguments (Params) and schemas.
type bound struct {
	*Tool
	access       httpapi.Access
	operationID  string // the route's operationId in /openapi.json
	inputSchema  map[string]any
	outputSchema map[string]any // nil: the route answers no JSON object, or the tool is a write
}

const instructions = "lodestone is a fleet server for embedded devices: telemetry (metrics, faults, reboots), " +
	"crash issues with symbolicated backtraces, firmware update campaigns and device logs. Start with " +
	"fleet_summary, then list and drill down. Times are UTC. Tools that change something (resolve_crash_issue, " +
	"set_ota_target, pause_campaign) first answer what would happen and a confirmation_token; nothing changes " +
	"until confirm is called with that token, the tool name and the same arguments."

// New binds the tool table to the route table.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	routes := map[string]httpapi.APIRoute{}
	for _, r := range opts.Routes {
		routes[r.Pattern] = r
	}
	s := &Server{opts: opts, confirms: newConfirmations(ConfirmTTL, opts.Now), byRole: map[lodestone.Role]*mcp.Server{}}
	for i := range Tools {
		t := Tools[i] // a copy: the route table fills in its arguments
		r, ok := routes[t.Route]
		if !ok {
			return nil, fmt.Errorf("mcp: tool %s calls %s, which the route table lacks", t.Name, t.Route)
		}
		if t.Preview != "" {
			p, _, _ := strings.Cut(t.Preview, "?")
			if _, ok := routes[p]; !ok {
				return nil, fmt.Errorf("mcp: tool %s previews with %s, which the route table lacks", t.Name, p)
			}
		}
		a := r.Access
		if a != httpapi.AccessViewer && a != httpapi.AccessProvisioner && a != httpapi.AccessAdmin {
			return nil, fmt.Errorf("mcp: tool %s calls %s, which is not an operator route (%s)", t.Name, t.Route, a)
		}
		if t.Write && opts.ReadOnly {
			continue
		}
		params, in, err := bindRoute(&t, r)
		if err != nil {
			return nil, err
		}
		t.Params = params
		t.Title = cmpOr(t.Title, r.Summary)
		t.Description = cmpOr(t.Description, r.Description)
		b := bound{Tool: &t, access: a, operationID: r.OperationID(), inputSchema: in}
		if !t.Write { // a write's first call answers a confirmation, not the route's answer
			b.outputSchema = outputSchema(r)
		}
		s.tools = append(s.tools, b)
	}
	for _, role := range []lodestone.Role{lodestone.RoleViewer, lodestone.RoleProvisioner, lodestone.RoleAdmin} {
		s.byRole[role] = s.build(role)
	}
	return s, nil
}

// ToolNames lists the tools a role sees, in table order.
func (s *Server) ToolNames(role lodestone.Role) []string {
	var out []string
	for _, t := range s.visible(role) {
		out = append(out, t.Name)
	}
	if s.writes(role) {
		out = append(out, ConfirmTool)
	}
	return out
}

func (s *Server) visible(role lodestone.Role) []bound {
	var out []bound
	for _, t := range s.tools {
		if role >= t.access.Role() {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) writes(role lodestone.Role) bool {
	return slices.ContainsFunc(s.visible(role), func(t bound) bool { return t.Write })
}

// build is the MCP server for one role: only the tools that role may call are listed at all.
func (s *Server) build(role lodestone.Role) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "lodestone", Title: "lodestone fleet server",
		Version: s.opts.Version}, &mcp.ServerOptions{Instructions: instructions, Logger: s.opts.Logger})
	for _, t := range s.visible(role) {
		tool := &mcp.Tool{Name: t.Name, Title: t.Title, Description: t.Description + " (Calls " + t.Route + ", operationId " + t.operationID + ".)",
			InputSchema: t.inputSchema, Annotations: &mcp.ToolAnnotations{Title: t.Title, ReadOnlyHint: !t.Write,
				IdempotentHint: true, OpenWorldHint: new(bool)}}
		if t.Write {
			destructive := false
			tool.Annotations.DestructiveHint = &destructive
		}
		if t.outputSchema != nil {
			tool.OutputSchema = t.outputSchema
		}
		srv.AddTool(tool, s.handler(t))
	}
	srv.AddReceivingMiddleware(s.auditUnknown(role))
	if s.writes(role) {
		srv.AddTool(&mcp.Tool{Name: ConfirmTool, Title: "Confirm a prepared write", Description: confirmDescription,
			InputSchema: confirmSchema, Annotations: &mcp.ToolAnnotations{Title: "Confirm a prepared write",
				OpenWorldHint: new(bool)}}, s.confirm)
	}
	return srv
}

// auditUnknown records calls of tools the role does not have (a viewer trying pause_campaign) before the SDK
// refuses them: a refused attempt is worth as much in the audit log as a refused confirmation.
func (s *Server) auditUnknown(role lodestone.Role) mcp.Middleware {
	names := s.ToolNames(role)
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if c, ok := req.(*mcp.CallToolRequest); ok && c.Params != nil && !slices.Contains(names, c.Params.Name) {
				name := c.Params.Name
				if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < '!' || r > '~' }) {
					name = "unknown"
				}
				ctx, p := s.caller(ctx)
				if _, err := s.refuse(ctx, p, bound{Tool: &Tool{Name: name}}, nil, lodestone.EFORBIDDEN,
					"no such tool for the "+role.String()+" role"); err != nil {
					return nil, err
				}
			}
			return next(ctx, method, req)
		}
	}
}

var confirmSchema = map[string]any{"type": "object", "additionalProperties": false,
	"required": []string{"confirmation_token", "tool"},
	"properties": map[string]any{
		"confirmation_token": map[string]any{"type": "string", "description": "The cfm_ token the write tool answered."},
		"tool":               map[string]any{"type": "string", "description": "The write tool's name."},
		"arguments": map[string]any{"type": "object",
			"description": "Exactly the arguments the write tool was called with."},
	}}

// For returns the MCP server for p's role, or nil when p may use none.
func (s *Server) For(p *lodestone.Principal) *mcp.Server {
	if p == nil || p.DeviceID != "" {
		return nil
	}
	role := min(p.Role, lodestone.RoleAdmin)
	return s.byRole[role]
}

// Handler serves MCP over streamable HTTP, for POST /mcp behind the API's guard, which has put the
// authenticated caller in the request's context. It is stateless: each POST is handled on its own, so any
// replica answers it and the tool list always follows the caller's current role.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		return s.For(lodestone.PrincipalFromContext(r.Context()))
	}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: s.opts.Logger,
		MaxRequestBodyBytes: 1 << 20,
		// Callers authenticate with a header on every request, never with ambient credentials, so a rebound
		// DNS name gains nothing; and the server often sits behind a proxy on the same host.
		DisableLocalhostProtection: true})
	// Browsers are kept out of cross-origin POSTs all the same: a session cookie, should one ever authenticate
	// this route, must not let another site call tools.
	return http.NewCrossOriginProtection().Handler(h)
}

// Run serves the stdio server for opts.Principal on t until the client goes away or ctx ends.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	srv := s.For(s.opts.Principal)
	if srv == nil {
		return lodestone.Errorf(lodestone.EFORBIDDEN, "this caller may use no MCP tools")
	}
	return srv.Run(ctx, t)
}

// caller is who a call runs as, with what the audit log wants to know about the request.
func (s *Server) caller(ctx context.Context) (context.Context, *lodestone.Principal) {
	p := s.opts.Principal
	if p == nil {
		p = lodestone.PrincipalFromContext(ctx)
	}
	ar := lodestone.AuditRequestFromContext(ctx)
	if ar.RequestID == "" {
		ar.RequestID = httpapi.RequestID(ctx)
	}
	if ar.ClientAddr == "" {
		ar.ClientAddr = httpapi.ClientIP(ctx)
	}
	ar.Via = lodestone.ViaMCP
	ctx = lodestone.NewContextWithAuditRequest(ctx, ar)
	if p != nil {
		ctx = lodestone.NewContextWithPrincipal(ctx, p)
	}
	return ctx, p
}

func (s *Server) handler(t bound) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		ctx, p := s.caller(ctx)
		if err := s.allowed(p, t); err != nil {
			return s.refuse(ctx, p, t, nil, lodestone.ErrorCode(err), lodestone.ErrorMessage(err))
		}
		args, err := t.parseArgs(req.Params.Arguments)
		if err != nil {
			return s.refuse(ctx, p, t, nil, lodestone.ErrorCode(err), lodestone.ErrorMessage(err))
		}
		if t.Write {
			return s.prepare(ctx, p, t, args)
		}
		if err := s.record(ctx, p, t, args, "called", ""); err != nil {
			return nil, err
		}
		r, err := t.request(t.Route, args, true)
		if err != nil {
			return nil, err
		}
		return s.call(ctx, r)
	}
}

// allowed checks p's role against t's route before anything runs; the API's guard checks it again.
func (s *Server) allowed(p *lodestone.Principal, t bound) error {
	switch {
	case p == nil:
		return lodestone.Errorf(lodestone.EUNAUTHORIZED, "authentication required")
	case !p.Allows(t.access.Role()):
		return lodestone.Errorf(lodestone.EFORBIDDEN, "%s needs the %s role (it calls %s)", t.Name, t.access.Role(),
			t.Route)
	}
	return nil
}

// prepare is a write's first step: it reads the current state, issues a confirmation token and changes nothing.
func (s *Server) prepare(ctx context.Context, p *lodestone.Principal, t bound, args map[string]any) (
	*mcp.CallToolResult, error) {
	var current json.RawMessage
	if t.Preview != "" {
		r, err := t.request(t.Preview, args, false)
		if err != nil {
			return nil, err
		}
		status, body, err := s.opts.Caller.Call(ctx, r.method, r.target, nil)
		if err != nil {
			return errorResult(lodestone.ErrorCode(err), 0, lodestone.ErrorMessage(err)), nil
		}
		switch {
		case status == http.StatusNotFound && t.PreviewMayBeMissing:
			current = json.RawMessage("null")
		case status/100 != 2:
			kind, msg := apiError(status, body)
			return s.refuse(ctx, p, t, args, kind, msg)
		default:
			current = body
		}
	}
	w, err := t.request(t.Route, args, true)
	if err != nil {
		return nil, err
	}
	token, exp, err := s.confirms.issue(principalKey(p), t.Name, canonical(args))
	if err != nil {
		return errorResult(lodestone.ErrorCode(err), 0, lodestone.ErrorMessage(err)), nil
	}
	if err := s.record(ctx, p, t, args, "confirmation_requested", ""); err != nil {
		return nil, err
	}
	would := map[string]any{"method": w.method, "path": w.target}
	if w.body != nil {
		would["body"] = json.RawMessage(w.body)
	}
	out := map[string]any{
		"confirmation_required": true, "confirmation_token": token, "expires_at": exp.UTC().Format(time.RFC3339),
		"tool": t.Name, "arguments": args, "would": would, "effect": t.Title, "current": current,
		"next": fmt.Sprintf("Nothing has changed. To do it, call %s with confirmation_token, tool %q and the same "+
			"arguments within %s.", ConfirmTool, t.Name, ConfirmTTL),
	}
	return jsonResult(out, false)
}

// confirm is a write's second step.
func (s *Server) confirm(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	ctx, p := s.caller(ctx)
	var in struct {
		Token     string          `json:"confirmation_token"`
		Tool      string          `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
	}
	confirmTool := bound{Tool: &Tool{Name: ConfirmTool}}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.Token == "" || in.Tool == "" {
		return s.refuse(ctx, p, confirmTool, nil, lodestone.EINVALID,
			"confirm takes confirmation_token, tool and arguments (an object)")
	}
	i := slices.IndexFunc(s.tools, func(t bound) bool { return t.Name == in.Tool && t.Write })
	if i < 0 {
		return s.refuse(ctx, p, confirmTool, nil, lodestone.EINVALID, fmt.Sprintf("%q is not a write tool here", in.Tool))
	}
	t := s.tools[i]
	if err := s.allowed(p, t); err != nil {
		return s.refuse(ctx, p, t, nil, lodestone.ErrorCode(err), lodestone.ErrorMessage(err))
	}
	args, err := t.parseArgs(in.Arguments)
	if err != nil {
		return s.refuse(ctx, p, t, nil, lodestone.ErrorCode(err), lodestone.ErrorMessage(err))
	}
	if kind, msg := s.confirms.redeem(in.Token, principalKey(p), t.Name, canonical(args)); kind != "" {
		return s.refuse(ctx, p, t, args, kind, msg)
	}
	if err := s.record(ctx, p, t, args, "confirmed", ""); err != nil {
		return nil, err
	}
	r, err := t.request(t.Route, args, true)
	if err != nil {
		return nil, err
	}
	return s.call(ctx, r)
}

// call sends r and turns the API's answer into the tool's result.
func (s *Server) call(ctx context.Context, r request) (*mcp.CallToolResult, error) {
	status, body, err := s.opts.Caller.Call(ctx, r.method, r.target, r.body)
	if err != nil {
		return errorResult(lodestone.ErrorCode(err), 0, lodestone.ErrorMessage(err)), nil
	}
	if status/100 != 2 {
		kind, msg := apiError(status, body)
		return errorResult(kind, status, msg), nil
	}
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}}}
	if len(body) > 0 && body[0] == '{' && json.Valid(body) {
		res.StructuredContent = json.RawMessage(body)
	}
	return res, nil
}

// refuse records a refused call and answers why.
func (s *Server) refuse(ctx context.Context, p *lodestone.Principal, t bound, args map[string]any, kind,
	msg string) (*mcp.CallToolResult, error) {
	if err := s.record(ctx, p, t, args, "refused", kind+": "+msg); err != nil {
		return nil, err
	}
	return errorResult(kind, 0, msg), nil
}

// apiError reads the API's error body: {"error": message, "code": kind}.
func apiError(status int, body []byte) (kind, msg string) {
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	if e.Code == "" {
		e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	return e.Code, e.Error
}

func errorResult(kind string, status int, msg string) *mcp.CallToolResult {
	if kind == "" {
		kind = lodestone.EINTERNAL
	}
	out := map[string]any{"error_kind": kind, "error": msg}
	if status != 0 {
		out["status"] = status
	}
	res, _ := jsonResult(out, true)
	return res
}

func jsonResult(v any, isError bool) (*mcp.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}},
		StructuredContent: json.RawMessage(b), IsError: isError}, nil
}

// principalKey names a caller for binding a confirmation: who, and with what role.
func principalKey(p *lodestone.Principal) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s\x00%d", p.Name, p.Role)
}
