package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

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
// for malformed JSON, trailing data, a key given twice, or a string holding NUL or invalid UTF-8, 422 with
// per-field errors for values of the wrong type, and then v's own Validate. Unknown fields are ignored, as
// ferrite does.
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return lodestone.Errorf(lodestone.ETOOLARGE, "request body exceeds %d bytes", maxBytes)
	case err != nil:
		return lodestone.Errorf(lodestone.EINVALID, "could not read JSON body")
	}
	return unmarshalJSON(body, v)
}

// unmarshalJSON decodes one JSON value from body into v with DecodeJSON's rules (less the content type and the
// size limit). A []json.RawMessage target is checked only at its top level: its elements are decoded, and so
// checked, one by one, so that one bad row of a bulk body fails alone.
func unmarshalJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return lodestone.Errorf(lodestone.EINVALID, "empty request body: send a JSON object")
	}
	_, rows := v.(*[]json.RawMessage)
	if err := checkJSON(body, rows); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return lodestone.Errorf(lodestone.EINVALID, "request body holds more than one JSON value")
		}
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
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

// jsonLevel is one open object or array while checkJSON walks a body.
type jsonLevel struct {
	array   bool
	index   int                 // array: the element being read
	key     string              // object: the member being read
	wantKey bool                // object: the next string is a key
	keys    map[string]struct{} // object: keys seen, folded (foldKey)
}

// checkJSON refuses what encoding/json would accept silently: a key given twice in one object (the last would
// win, so {"role":"viewer","role":"admin"} reads as admin to us and as viewer to a proxy that checked it), and a
// string holding NUL or invalid UTF-8 (the decoder turns the latter into U+FFFD; PostgreSQL refuses NUL). Keys
// are compared folded as the decoder matches them to fields (foldKey). The error names the field. Syntax errors are
// left to the decoder, which words them. shallow checks only the top-level value's own keys and strings.
func checkJSON(body []byte, shallow bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonLevel
	var prev int64
	// done moves the innermost level past the value just read.
	done := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.array {
			top.index++
		} else {
			top.wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder reports
		}
		off := dec.InputOffset()
		raw := body[prev:off] // the token with the separators and spaces before it
		prev = off
		if shallow && len(stack) > 1 {
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				stack = stack[:len(stack)-1]
				done()
			} else if ok {
				stack = append(stack, &jsonLevel{})
			}
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, &jsonLevel{array: t == '[', wantKey: t == '{', keys: map[string]struct{}{}})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := stack[n-1]
				top.key, top.wantKey = t, false
				if err := checkText(jsonPath(stack), t, raw); err != nil {
					return err
				}
				folded := foldKey(t)
				if _, dup := top.keys[folded]; dup {
					return lodestone.Errorf(lodestone.EINVALID, "field %q is given more than once", jsonPath(stack))
				}
				top.keys[folded] = struct{}{}
				continue
			}
			if err := checkText(jsonPath(stack), t, raw); err != nil {
				return err
			}
			done()
		default:
			done()
		}
	}
}

// foldKey folds a key as encoding/json does when it matches keys to fields: ASCII case, and also the Kelvin
// sign (K) and the long s (ſ), which it takes for k and s. Upper then lower case maps both.
func foldKey(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// checkText refuses a decoded JSON string that holds NUL, or whose raw text is not UTF-8.
func checkText(field, s string, raw []byte) error {
	if field == "" {
		field = "body"
	}
	if !utf8.Valid(raw) {
		return lodestone.Errorf(lodestone.EINVALID, "field %q is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return lodestone.Errorf(lodestone.EINVALID, "field %q contains a NUL character", field)
	}
	return nil
}

// jsonPath names the value being read, as name, items[2] or target.version.
func jsonPath(stack []*jsonLevel) string {
	var b strings.Builder
	for _, l := range stack {
		switch {
		case l.array:
			b.WriteString("[" + strconv.Itoa(l.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(l.key)
		}
	}
	return b.String()
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
