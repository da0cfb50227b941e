package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// schemaGen turns Go types into JSON Schema 2020-12 (the dialect of OpenAPI 3.1) the way encoding/json writes
// them: json tags name the fields, a field without omitempty is required (the encoder always writes it), a
// pointer, map or slice without omitempty may be null, and an embedded struct's fields are the outer one's.
// Named struct types become components (refs) unless inline is set, for consumers that want one self-contained
// schema (MCP tool schemas).
//
// In request mode (request bodies) no field is required and pointers are nullable: the API's decoder accepts
// missing fields and the handler says which are needed (422 with the fields at fault).
type schemaGen struct {
	inline  bool
	request bool
	defs    map[string]map[string]any // component name -> schema
	names   map[typeMode]string
	busy    map[reflect.Type]bool // guards inline recursion
}

type typeMode struct {
	t       reflect.Type
	request bool
}

func newSchemaGen(inline bool) *schemaGen {
	return &schemaGen{inline: inline, defs: map[string]map[string]any{}, names: map[typeMode]string{},
		busy: map[reflect.Type]bool{}}
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawJSONType   = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// SchemaOf returns the self-contained JSON Schema (2020-12, no $ref) of the JSON that encoding/json writes for
// v's type. MCP tools use it for their input and output schemas.
func SchemaOf(v any) map[string]any {
	if v == nil {
		return map[string]any{}
	}
	return newSchemaGen(true).schema(reflect.TypeOf(v))
}

// schema returns the schema of t as a value (nullable pointers are handled by the caller's field logic).
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		return nullable(g.schema(t.Elem()))
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case rawJSONType:
		return map[string]any{} // any JSON value
	}
	// A type with its own encoding (or decoding: ddi.FlexID reads a number or a string) says its schema.
	if s, ok := reflect.Zero(t).Interface().(interface{ JSONSchema() map[string]any }); ok {
		return s.JSONSchema()
	}
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return map[string]any{} // a custom encoding this generator cannot see into
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		return g.structSchema(t)
	}
	return map[string]any{}
}

// structSchema is a named struct's $ref (registering the component) or an anonymous struct's inline schema.
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	if g.inline || t.Name() == "" {
		if g.busy[t] {
			return map[string]any{"type": "object"} // a recursive type: stop here
		}
		g.busy[t] = true
		defer delete(g.busy, t)
		return g.objectSchema(t)
	}
	name, ok := g.names[typeMode{t, g.request}]
	if !ok {
		base := componentName(t)
		if g.request && !strings.HasSuffix(base, "Request") {
			base += "Input"
		}
		name = base
		for i := 2; g.defs[name] != nil; i++ { // two packages' types with one name
			name = base + strings.Repeat("_", i-1)
		}
		g.names[typeMode{t, g.request}] = name
		g.defs[name] = map[string]any{} // placeholder: recursion ends at the ref
		g.defs[name] = g.objectSchema(t)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// componentName is the type's name with its first letter upper-cased and a "JSON" suffix dropped: deviceJSON is
// Device.
func componentName(t reflect.Type) string {
	n := strings.TrimSuffix(t.Name(), "JSON")
	if i := strings.IndexByte(n, '['); i >= 0 {
		n = n[:i]
	}
	if n == "" {
		return "Object"
	}
	return strings.ToUpper(n[:1]) + n[1:]
}

func (g *schemaGen) objectSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// fields adds t's JSON fields; embedded structs without a tag contribute theirs, as encoding/json does.
func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omitempty := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		var s map[string]any
		switch {
		case strings.Contains(","+opts+",", ",string,"):
			s = map[string]any{"type": "string"}
		case f.Type.Kind() == reflect.Pointer:
			s = g.schema(f.Type.Elem())
			if !omitempty {
				s = nullable(s)
			}
		default:
			// A nil slice or map would be written as null: handlers that promise a list allocate one, and the
			// validation test holds them to it.
			s = g.schema(f.Type)
		}
		if d := f.Tag.Get("doc"); d != "" {
			s = withDescription(s, d)
		}
		props[name] = s
		if !omitempty && !g.request {
			*required = append(*required, name)
		}
	}
}

// nullable lets s also be null: a type list for plain schemas, anyOf for references.
func nullable(s map[string]any) map[string]any {
	if ref, ok := s["$ref"]; ok {
		return map[string]any{"anyOf": []any{map[string]any{"$ref": ref}, map[string]any{"type": "null"}}}
	}
	switch ty := s["type"].(type) {
	case string:
		out := clone(s)
		out["type"] = []any{ty, "null"}
		return out
	case nil:
		return s // any value already
	}
	return s
}

func withDescription(s map[string]any, d string) map[string]any {
	if _, ok := s["$ref"]; ok {
		return map[string]any{"allOf": []any{s}, "description": d}
	}
	out := clone(s)
	out["description"] = d
	return out
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
