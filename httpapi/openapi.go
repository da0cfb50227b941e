package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// routesOpenAPI serves the API description. It is public: it lists routes and the shapes of their answers,
// never data, and a client (or an agent) needs it to learn how to authenticate before it has credentials.
// Nothing instance-specific is in it beyond which routes this configuration opens (PUBLIC_EVENTS and
// PUBLIC_METRICS show as those routes' access).
func (s *Server) routesOpenAPI() {
	// Built once, on the first request, when every route is registered.
	doc := sync.OnceValues(func() ([]byte, error) { return json.Marshal(s.OpenAPI()) })
	s.handle("GET /openapi.json", AccessPublic, func(w http.ResponseWriter, r *http.Request) error {
		b, err := doc()
		if err != nil {
			return fmt.Errorf("openapi document: %w", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
		return nil
	})
}

// observeResponses, set only by the httpapi tests, wraps every server's handler: they record each response the
// suite produces and validate it against the OpenAPI document (openapi_test.go).
var observeResponses func(s *Server, h http.Handler) http.Handler

// Security scheme names in the document.
const (
	schemeBasic     = "basicAuth"
	schemeBearer    = "bearerAuth"
	schemeDeviceKey = "deviceKey"
	schemeDDI       = "ddiToken"
)

// OpenAPI returns the OpenAPI 3.1 document of every registered route, generated from the route table, the
// routes' metadata (routeDocs) and the Go types it names.
func (s *Server) OpenAPI() map[string]any {
	g := newSchemaGen(false)
	paths := map[string]any{}
	for _, r := range s.APIRoutes() {
		item, _ := paths[r.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[r.Path] = item
		}
		item[strings.ToLower(r.Method)] = operation(g, r)
	}
	errSchema := g.schema(reflect.TypeFor[errorBody]())
	ingestSchema := g.schema(reflect.TypeFor[ingestResponse]())
	addErrorDocs(g)
	version := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{
			"title":   "lodestone",
			"version": version,
			"description": "Fleet server for embedded devices, compatible with ferrite-server. Generated from the " +
				"route table: x-lodestone-access on each operation is the least access it needs (public, device, " +
				"viewer, provisioner, admin; controller for hawkBit DDI). Errors answer ErrorBody ({\"error\",\"code\"}, plus \"fields\" on " +
				"422), except POST /ingest/chunks, which keeps ferrite's IngestResponse. Responses only grow: " +
				"clients must ignore fields they do not know.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				schemeBasic: map[string]any{"type": "http", "scheme": "basic",
					"description": "A user: BASIC_AUTH_USER/BASIC_AUTH_PASS or a managed user (/admin/users)."},
				schemeBearer: map[string]any{"type": "http", "scheme": "bearer",
					"description": "An API token (lst_..., /admin/tokens), an OpenID Connect access token when " +
						"OIDC is configured, or, on device routes, a device key (lsd_...)."},
				schemeDDI: map[string]any{"type": "apiKey", "in": "header", "name": "Authorization",
					"description": "hawkBit DDI: \"TargetToken <device key>\" (the controller's own lsd_... key; " +
						"it may act only as that controller) or \"GatewayToken <token>\" (DDI_GATEWAY_TOKEN, any " +
						"controller). Without credentials only when anonymous DDI access is enabled."},
				schemeDeviceKey: map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key",
					"description": "A device's own key (lsd_..., /devices/{id}/keys) or the fleet's " +
						"INGEST_API_KEY. When no INGEST_API_KEY is set, device routes also accept requests without " +
						"a key, as ferrite does."},
			},
			"responses": map[string]any{
				"Error": map[string]any{"description": "The error shape of every route but ingest.",
					"headers": errorHeaders(),
					"content": map[string]any{"application/json": map[string]any{"schema": errSchema,
						"example": errorBody{Error: "device not found: A300F1B2", Code: "not_found"}}}},
				"IngestAuthError": map[string]any{"description": "Ingest's 401, 403 and 429: the access " +
					"check's ErrorBody, or, for data a device key may not post, ferrite's ingest answer.",
					"content": map[string]any{"application/json": map[string]any{
						"schema": map[string]any{"anyOf": []any{errSchema, ingestSchema}}}}},
				"IngestError": map[string]any{"description": "ferrite's ingest answer.",
					"headers": errorHeaders(),
					"content": map[string]any{"application/json": map[string]any{"schema": ingestSchema,
						"example": ingestResponse{ChunksReceived: 0, Errors: []string{"empty body: send one or more ferrite chunks"}}}}},
			},
		},
	}
}

// errorHeaders are the headers an error may carry: when to retry (429, 503) and how to authenticate (401).
func errorHeaders() map[string]any {
	str := map[string]any{"type": "string"}
	return map[string]any{
		"Retry-After": map[string]any{"schema": str,
			"description": "seconds to wait before retrying (429, 503; 300 when storage is full)"},
		"WWW-Authenticate": map[string]any{"schema": str,
			"description": "the challenge of a 401: Basic, Bearer (OIDC) or ApiKey (device routes)"},
	}
}

// addErrorDocs describes the error shape's fields for readers of the components.
func addErrorDocs(g *schemaGen) {
	if s, ok := g.defs["ErrorBody"]; ok {
		s["description"] = "Every error but ingest's: a message for people, a stable code for programs " +
			"(invalid, not_found, conflict, unauthorized, forbidden, too_large, unavailable, internal, " +
			"rate_limited, unsupported_media_type, too_many_streams, ...) and, on 422, the fields at fault."
	}
	if s, ok := g.defs["IngestResponse"]; ok {
		s["description"] = "ferrite's ingest answer, on success and on error: ok, chunks_received and the " +
			"errors; lodestone adds the update on offer to the one device that posted (ota)."
	}
}

func operation(g *schemaGen, r APIRoute) map[string]any {
	op := map[string]any{
		"operationId":        r.OperationID(),
		"summary":            r.Summary,
		"tags":               []string{r.Tag()},
		"x-lodestone-access": r.Access.String(),
		"security":           security(r.Access),
	}
	if r.Description != "" {
		op["description"] = r.Description
	}
	if len(r.Params) > 0 {
		var ps []any
		for _, p := range r.Params {
			pm := map[string]any{"name": p.Name, "in": p.In, "schema": paramSchema(p, g)}
			if p.Required || p.In == "path" {
				pm["required"] = true
			}
			if p.Description != "" {
				pm["description"] = p.Description
			}
			if p.Example != nil {
				pm["example"] = p.Example
			}
			ps = append(ps, pm)
		}
		op["parameters"] = ps
	}
	if b := r.Body; b != nil {
		mt := map[string]any{}
		if b.Type != nil {
			g.request = true
			mt["schema"] = g.schema(reflectType(b.Type))
			g.request = false
		} else {
			mt["schema"] = map[string]any{"type": "string", "contentMediaType": mediaType(b.ContentType)}
		}
		if b.Example != nil {
			mt["example"] = b.Example
		}
		content := map[string]any{mediaType(b.ContentType): mt}
		if b.Type == nil {
			// A raw body is read as bytes whatever its Content-Type says (ferrite's clients send several).
			content["*/*"] = mt
		}
		rb := map[string]any{"required": !b.Optional, "content": content}
		if b.Description != "" {
			rb["description"] = b.Description
		}
		op["requestBody"] = rb
	}
	responses := map[string]any{}
	for _, rep := range r.Responses {
		// Replies with one status and several content types (JSON or an event stream) share one response.
		resp, _ := responses[strconv.Itoa(rep.Status)].(map[string]any)
		if resp == nil {
			resp = map[string]any{"description": cmpOr(rep.Description, http.StatusText(rep.Status))}
			responses[strconv.Itoa(rep.Status)] = resp
		}
		if rep.Type != nil || rep.ContentType != "" {
			mt := map[string]any{}
			if rep.Type != nil {
				mt["schema"] = g.schema(reflectType(rep.Type))
			} else {
				mt["schema"] = map[string]any{"type": "string", "contentMediaType": mediaType(rep.ContentType)}
			}
			if rep.Example != nil {
				mt["example"] = rep.Example
			}
			content, _ := resp["content"].(map[string]any)
			if content == nil {
				content = map[string]any{}
				resp["content"] = content
			}
			content[mediaType(rep.ContentType)] = mt
		}
		if len(rep.Headers) > 0 {
			hs, _ := resp["headers"].(map[string]any)
			if hs == nil {
				hs = map[string]any{}
				resp["headers"] = hs
			}
			for name, d := range rep.Headers {
				hs[name] = map[string]any{"description": d, "schema": map[string]any{"type": "string"}}
			}
		}
	}
	errRef := map[string]any{"$ref": "#/components/responses/Error"}
	if r.FerriteErrors {
		errRef = map[string]any{"$ref": "#/components/responses/IngestError"}
	}
	errs := slices.Clone(r.Errors)
	if len(r.Params) > 0 || r.Body != nil {
		errs = append(errs, http.StatusBadRequest)
	}
	errs = append(errs, http.StatusServiceUnavailable)
	for _, st := range errs {
		if _, ok := responses[strconv.Itoa(st)]; !ok {
			responses[strconv.Itoa(st)] = errRef
		}
	}
	// Refused credentials, roles and rate limits are answered before the handler runs, as ErrorBody; ingest
	// also refuses a device key's data for another device itself, in its own shape.
	authRef := map[string]any{"$ref": "#/components/responses/Error"}
	if r.FerriteErrors {
		authRef = map[string]any{"$ref": "#/components/responses/IngestAuthError"}
	}
	for _, st := range authErrors(r.Access) {
		if _, ok := responses[strconv.Itoa(st)]; !ok {
			responses[strconv.Itoa(st)] = authRef
		}
	}
	// Any other status (413 on a large body, 500, 504, ...) is an error in the same shape.
	responses["default"] = errRef
	op["responses"] = responses
	return op
}

func security(a Access) []any {
	switch a {
	case AccessPublic:
		return []any{}
	case AccessDevice:
		return []any{map[string]any{schemeDeviceKey: []string{}}, map[string]any{schemeBearer: []string{}}}
	case AccessController:
		return []any{map[string]any{schemeDDI: []string{}}}
	}
	return []any{map[string]any{schemeBasic: []string{}}, map[string]any{schemeBearer: []string{}}}
}

// OperationID is the route's stable, readable name, also the MCP tool name: "GET /devices/{id}/faults" is
// get_devices_id_faults.
func (r APIRoute) OperationID() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.Method))
	for _, part := range strings.Split(r.Path, "/") {
		part = strings.Trim(part, "{}.")
		if part == "" {
			continue
		}
		b.WriteByte('_')
		b.WriteString(strings.Map(func(c rune) rune {
			if c == '-' || c == '.' {
				return '_'
			}
			return c
		}, part))
	}
	return b.String()
}

// Tag groups routes by their first path segment (/admin/... by the first two): devices, ota, admin/users.
func (r APIRoute) Tag() string {
	parts := strings.Split(strings.Trim(r.Path, "/"), "/")
	if parts[0] == "admin" && len(parts) > 1 {
		return "admin/" + parts[1]
	}
	return parts[0]
}

func reflectType(v any) reflect.Type { return reflect.TypeOf(v) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
