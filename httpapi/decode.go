package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// FieldErrors is a payload that parsed but does not hold valid values: field name -> what is wrong. It is
// answered 422 with the fields listed, as ferrite (axum) answers wrong types and missing fields.
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e[k]
	}
	return "invalid fields: " + strings.Join(parts, "; ")
}

// Add records a problem with field (the first one per field wins).
func (e FieldErrors) Add(field, msg string) {
	if _, ok := e[field]; !ok {
		e[field] = msg
	}
}

// Err returns e as an error, or nil when it holds nothing.
func (e FieldErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Validator is implemented by payloads that check themselves after decoding.
type Validator interface {
	Validate() error // nil, FieldErrors (422) or a lodestone error
}

// DefaultMaxJSON bounds JSON request bodies unless a route says otherwise.
const DefaultMaxJSON = 1 << 20

// DecodeJSON reads r's body into v: 415 for a non-JSON content type, 413 past maxBytes (0: DefaultMaxJSON), 400
// for malformed JSON or trailing data, 422 with per-field errors for values of the wrong type, and then v's own
// Validate. Unknown fields are ignored, as ferrite does.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return lodestone.Errorf(codeUnsupportedMedia, "Content-Type must be application/json")
		}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxJSON
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return lodestone.Errorf(lodestone.EINVALID, "request body holds more than one JSON value")
		}
		if _, err := dec.Token(); err != io.EOF {
			return lodestone.Errorf(lodestone.EINVALID, "request body holds more than one JSON value")
		}
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &tooBig):
		return lodestone.Errorf(lodestone.ETOOLARGE, "request body exceeds %d bytes", maxBytes)
	case errors.Is(err, io.EOF):
		return lodestone.Errorf(lodestone.EINVALID, "empty request body: send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return lodestone.Errorf(lodestone.EINVALID, "malformed JSON: %v", err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return lodestone.Errorf(lodestone.EINVALID, "request body must be a JSON %s", typeName(typ.Type.Kind().String()))
		}
		return FieldErrors{field: "must be " + typeName(typ.Type.Kind().String()) + ", got " + typ.Value}
	default:
		return lodestone.Errorf(lodestone.EINVALID, "could not read JSON body")
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

func typeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice", kind == "array":
		return "a list"
	case kind == "struct", kind == "map":
		return "an object"
	}
	return kind
}
