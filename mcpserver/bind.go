package mcpserver

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// bindRoute gives t its arguments from its route's metadata (httpapi.APIRoute, the source of the OpenAPI
// document): every path and query parameter of the route, and the fields of its JSON body other than the ones
// the tool fixes, with the route's types, enums and descriptions. The entries of t.Params in tools.go only
// refine them for an agent: a better description, a default, an argument the tool requires, the named values of
// a free-text parameter (a subset of the route's enum, if it has one); an entry that names
// no argument of the route is an error, so the two tables cannot drift apart. It returns the arguments and the
// input schema built from the route's schemas.
func bindRoute(t *Tool, r httpapi.APIRoute) ([]Param, map[string]any, error) {
	in := r.InputSchema()
	props, _ := in["properties"].(map[string]any)
	var derived []Param
	schemas := map[string]map[string]any{}
	for _, p := range r.Params {
		if p.In != "path" && p.In != "query" {
			continue // headers are the transport's, not an agent's
		}
		s, _ := props[p.Name].(map[string]any)
		derived = append(derived, Param{Name: p.Name, In: p.In, Description: p.Description, Required: p.Required,
			Enum: p.Enum})
		schemas[p.Name] = s
	}
	if body, ok := props["body"].(map[string]any); ok {
		fields, _ := body["properties"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			if _, fixed := t.Body[name]; fixed {
				continue
			}
			if _, dup := schemas[name]; dup {
				return nil, nil, fmt.Errorf("mcp: tool %s: %s has a parameter and a body field %q", t.Name, t.Route, name)
			}
			s, _ := fields[name].(map[string]any)
			d, _ := s["description"].(string)
			derived = append(derived, Param{Name: name, In: "body", Description: d})
			schemas[name] = s
		}
	}
	for i := range derived {
		ty, err := argType(schemas[derived[i].Name])
		if err != nil {
			return nil, nil, fmt.Errorf("mcp: tool %s: argument %s of %s: %w", t.Name, derived[i].Name, t.Route, err)
		}
		derived[i].Type = ty
	}
	// tools.go's entries come first, in their order, then the route's other arguments.
	var out []Param
	for _, o := range t.Params {
		i := slices.IndexFunc(derived, func(p Param) bool { return p.Name == o.Name })
		if i < 0 {
			return nil, nil, fmt.Errorf("mcp: tool %s describes argument %q, which its route %s does not take",
				t.Name, o.Name, t.Route)
		}
		p := derived[i]
		if len(o.Enum) > 0 {
			if len(p.Enum) > 0 && slices.ContainsFunc(o.Enum, func(v string) bool { return !slices.Contains(p.Enum, v) }) {
				return nil, nil, fmt.Errorf("mcp: tool %s: argument %q allows %v, outside its route's %v", t.Name,
					o.Name, o.Enum, p.Enum)
			}
			p.Enum = o.Enum
		}
		p.Description = cmpOr(o.Description, p.Description)
		p.Default = o.Default
		p.Required = p.Required || o.Required
		out = append(out, p)
		derived = slices.Delete(derived, i, i+1)
	}
	out = append(out, derived...)

	schemaProps := map[string]any{}
	var required []string
	for _, p := range out {
		s := maps.Clone(schemas[p.Name])
		if s == nil {
			s = map[string]any{}
		}
		s["type"] = p.Type // the route's type without null: an agent leaves the argument out instead
		if p.Description != "" {
			s["description"] = p.Description
		}
		if p.Default != nil {
			s["default"] = p.Default
		}
		if len(p.Enum) > 0 {
			s["enum"] = p.Enum
		}
		if p.Type == "integer" {
			s["minimum"] = 0 // parse refuses negative numbers: every integer argument is an id, a count or a limit
		}
		schemaProps[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	schema := map[string]any{"type": "object", "properties": schemaProps, "additionalProperties": false}
	if len(required) > 0 {
		schema["required"] = required
	}
	return out, schema, nil
}

// argType is the JSON type of an argument's schema, ignoring null; the types parse handles.
func argType(s map[string]any) (string, error) {
	var types []string
	switch ty := s["type"].(type) {
	case nil:
		return "string", nil // a parameter without a type is a string
	case string:
		types = []string{ty}
	case []any:
		for _, v := range ty {
			if v, ok := v.(string); ok && v != "null" {
				types = append(types, v)
			}
		}
	}
	if len(types) != 1 || !slices.Contains([]string{"string", "integer", "boolean"}, types[0]) {
		return "", fmt.Errorf("type %v is not one a tool argument takes (string, integer, boolean)", s["type"])
	}
	return types[0], nil
}

// outputSchema is the schema of what a read tool answers: its route's JSON success, when the route describes
// one as an object (MCP's structured content is an object).
func outputSchema(r httpapi.APIRoute) map[string]any {
	s := r.OutputSchema()
	if s == nil || s["type"] != "object" {
		return nil
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return strings.TrimSpace(b)
}
