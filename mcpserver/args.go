package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
)

// maxArgText bounds one text argument; the API has its own, usually smaller, limits.
const maxArgText = 1024

// parseArgs checks a call's arguments against the tool's parameters once, where they enter, and returns them
// normalized: strings, int64s and bools, with defaults filled in.
func (t *Tool) parseArgs(raw json.RawMessage) (map[string]any, error) {
	in := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) > 0 && string(bytes.TrimSpace(raw)) != "null" {
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, lodestone.Errorf(lodestone.EINVALID, "arguments must be a JSON object")
		}
	}
	out := map[string]any{}
	for name, v := range in {
		i := slices.IndexFunc(t.Params, func(p Param) bool { return p.Name == name })
		if i < 0 {
			return nil, lodestone.Errorf(lodestone.EINVALID, "unknown argument %q; %s takes %s", name, t.Name,
				t.paramNames())
		}
		if string(v) == "null" {
			continue
		}
		val, err := t.Params[i].parse(v)
		if err != nil {
			return nil, err
		}
		out[name] = val
	}
	for _, p := range t.Params {
		if _, ok := out[p.Name]; ok {
			continue
		}
		if p.Required {
			return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q is required", p.Name)
		}
		if p.Default != nil {
			out[p.Name] = p.Default
		}
	}
	return out, nil
}

func (t *Tool) paramNames() string {
	if len(t.Params) == 0 {
		return "no arguments"
	}
	names := make([]string, len(t.Params))
	for i, p := range t.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func (p Param) parse(v json.RawMessage) (any, error) {
	switch p.Type {
	case "integer":
		var n json.Number
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		if d.Decode(&n) != nil {
			return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q must be an integer, got %s", p.Name, v)
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || i < 0 {
			return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q must be a non-negative integer, got %s",
				p.Name, v)
		}
		return i, nil
	case "boolean":
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q must be true or false, got %s", p.Name, v)
		}
		return b, nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q must be a string, got %s", p.Name, v)
	}
	if len(s) > maxArgText {
		return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q is longer than %d bytes", p.Name, maxArgText)
	}
	if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
		return nil, lodestone.Errorf(lodestone.EINVALID, "argument %q must be one of %s, got %q", p.Name,
			strings.Join(p.Enum, ", "), s)
	}
	return s, nil
}

// request is what a tool sends: method, path with query, and JSON body (nil for none).
type request struct {
	method, target string
	body           []byte
}

// request fills route (the tool's own or its preview) from args.
func (t *Tool) request(route string, args map[string]any, withBody bool) (request, error) {
	method, path, _ := strings.Cut(route, " ")
	q := url.Values{}
	body := map[string]any{}
	for _, p := range t.Params {
		v, ok := args[p.Name]
		if !ok {
			continue
		}
		text := fmt.Sprint(v)
		switch {
		case strings.Contains(path, "{"+p.Name+"}"):
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(text))
		case p.In == "query" && withBody: // the preview is a different read: only path values carry over
			q.Set(p.Name, text)
		case p.In == "body":
			body[p.Name] = v
		}
	}
	if strings.Contains(path, "{") {
		return request{}, lodestone.Errorf(lodestone.EINTERNAL, "route %s has a value no argument fills", route)
	}
	r := request{method: method, target: path}
	if len(q) > 0 {
		r.target += "?" + q.Encode()
	}
	if withBody && (len(body) > 0 || len(t.Body) > 0) {
		for k, v := range t.Body {
			body[k] = v
		}
		b, err := json.Marshal(body)
		if err != nil {
			return request{}, err
		}
		r.body = b
	}
	return r, nil
}

// canonical is args as one comparable text: encoding/json sorts map keys.
func canonical(args map[string]any) string {
	b, _ := json.Marshal(args)
	return string(b)
}
