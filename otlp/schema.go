package otlp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema kinds of a [[schema]] entry, as detritus names them.
const (
	SchemaCrashMetadata = "crash_metadata"
	SchemaLogAttributes = "log_attributes"
)

type schemaKey struct{ project, kind string }

// Schemas are the compiled [[schema]] entries of a token file. No schema for (project, kind) accepts everything.
type Schemas struct {
	m map[schemaKey]*jsonschema.Schema
}

func (s *Schemas) get(project, kind string) *jsonschema.Schema {
	if s == nil {
		return nil
	}
	return s.m[schemaKey{project, kind}]
}

// unapplied lists the entries that are compiled but that no request path validates against yet, sorted.
func (s *Schemas) unapplied() []schemaKey {
	var out []schemaKey
	for k := range s.m {
		if k.kind == SchemaLogAttributes {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b schemaKey) int { return strings.Compare(a.project, b.project) })
	return out
}

type schemaEntry struct {
	Project *string `toml:"project"`
	Kind    *string `toml:"kind"`
	Path    *string `toml:"path"`
}

// noLoader refuses every $ref outside the schema file: detritus resolves no remote or file references.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("reference %q is not resolved: only references inside the schema file are", url)
}

// compileSchemas reads and compiles the entries, paths relative to dir (the token file's directory). A schema
// whose project no token has is an error, as in detritus; a later entry for the same (project, kind) wins.
func compileSchemas(entries []schemaEntry, dir string, projects map[string]bool) (*Schemas, error) {
	s := &Schemas{m: map[schemaKey]*jsonschema.Schema{}}
	for i, e := range entries {
		if e.Project == nil || e.Kind == nil || e.Path == nil {
			return nil, fmt.Errorf("token config: schema %d needs project, kind and path", i+1)
		}
		if *e.Kind != SchemaCrashMetadata && *e.Kind != SchemaLogAttributes {
			return nil, fmt.Errorf("token config: schema %d: kind %q is not crash_metadata or log_attributes", i+1, *e.Kind)
		}
		if !projects[*e.Project] {
			return nil, fmt.Errorf("token config: schema %d is for project %q, which no token has", i+1, *e.Project)
		}
		path := *e.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		f, err := os.Open(filepath.Clean(path))
		if err != nil {
			return nil, fmt.Errorf("token config: schema I/O error: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("token config: schema %s is not JSON: %w", path, err)
		}
		c := jsonschema.NewCompiler()
		c.UseLoader(noLoader{})
		url := fmt.Sprintf("urn:lodestone:schema:%d", i)
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("token config: schema %s: %w", path, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("token config: schema %s does not compile: %w", path, err)
		}
		s.m[schemaKey{*e.Project, *e.Kind}] = sch
	}
	return s, nil
}

// schemaErrors validates inst and returns detritus 0.2's messages, one per failed leaf keyword:
// "<instance pointer>: <message> [schema <keyword path>]", with messages that never repeat the payload's values.
// ok is false for an error that is not a validation failure.
func schemaErrors(sch *jsonschema.Schema, inst any) (msgs []string, ok bool) {
	err := sch.Validate(inst)
	if err == nil {
		return nil, true
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, false
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := "/" + strings.Join(e.InstanceLocation, "/")
		kw := strings.Join(e.ErrorKind.KeywordPath(), "/")
		msgs = append(msgs, fmt.Sprintf("%s: %s [schema %s]", ptr, maskedMessage(e.ErrorKind), kw))
	}
	walk(ve)
	return msgs, true
}

var englishPrinter = message.NewPrinter(language.English)

// maskedMessage describes a failure without the instance's value: kinds whose library message quotes the value
// get a message of their own.
func maskedMessage(k jsonschema.ErrorKind) string {
	switch x := k.(type) {
	case *kind.Pattern:
		return fmt.Sprintf("value does not match pattern %q", x.Want)
	case *kind.Format:
		return fmt.Sprintf("value is not a valid %s", x.Want)
	case *kind.Minimum, *kind.ExclusiveMinimum:
		return "value is below the minimum"
	case *kind.Maximum, *kind.ExclusiveMaximum:
		return "value is above the maximum"
	case *kind.MultipleOf:
		return "value is not a multiple of the schema's divisor"
	case *kind.Enum:
		return "value is not one of the allowed values"
	case *kind.Const:
		return "value is not the required constant"
	}
	return k.LocalizedString(englishPrinter)
}
