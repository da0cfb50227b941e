package otlp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

// schemaTokens writes a token file with a crash_metadata schema for project detritus beside it (relative path,
// as detritus' fixture does) and loads it.
func schemaTokens(t *testing.T, schema string) *otlp.TokenFile {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "schemas"), 0o755)
	os.WriteFile(filepath.Join(dir, "schemas", "crash.schema.json"), []byte(schema), 0o644)
	file := filepath.Join(dir, "tokens.toml")
	os.WriteFile(file, []byte(tokenTOML+`
[[schema]]
project = "detritus"
kind = "crash_metadata"
path = "schemas/crash.schema.json"
`), 0o600)
	tf, err := otlp.LoadTokenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return tf
}

const requiredTagSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
	"required":["context"],"properties":{"context":{"type":"object","required":["required_tag"],
	"properties":{"required_tag":{"type":"string","pattern":"^tag-"}}}}}`

func TestCrashRejectedWhenSchemaViolated(t *testing.T) {
	tf := schemaTokens(t, requiredTagSchema)
	e := newEnv(t, tokenTOML, func(c *otlp.Config) { c.Tokens = tf })
	upload := func(ctx string) (int, map[string]any) {
		md := strings.Replace(metadataJSON("detritus", installID, 1), `"context":{"k":1}`, `"context":`+ctx, 1)
		ct, body := envelope(part{name: "metadata", body: []byte(md)}, part{name: "dump", body: []byte("dump")})
		return postCrash(t, e, ct, body, "secret-token")
	}
	code, out := upload(`{"k":1}`)
	if code != 422 || !strings.Contains(errMsg(out), "metadata schema validation failed: ") ||
		!strings.Contains(errMsg(out), "/context: missing property 'required_tag'") {
		t.Fatalf("missing tag: %d %v", code, out)
	}
	if c, _ := out["error"].(map[string]any)["code"].(float64); c != 422 {
		t.Fatalf("error code %v", out)
	}
	// A value that breaks the pattern is not echoed back.
	code, out = upload(`{"required_tag":"private-value-123"}`)
	if code != 422 || strings.Contains(errMsg(out), "private-value-123") ||
		!strings.Contains(errMsg(out), "/context/required_tag: value does not match pattern") {
		t.Fatalf("pattern: %d %v", code, out)
	}
	n := 0
	e.blobs.Walk(context.Background(), func(lodestone.BlobRef) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d blobs stored by rejected uploads", n)
	}
	if code, out = upload(`{"required_tag":"tag-1"}`); code != 201 {
		t.Fatalf("conforming upload: %d %v", code, out)
	}
}

func TestSchemaConfigErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"type":42}`), 0o644)
	os.WriteFile(filepath.Join(dir, "notjson.json"), []byte(`{`), 0o644)
	os.WriteFile(filepath.Join(dir, "remote.json"), []byte(`{"$ref":"https://example.com/s.json"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"type":"object"}`), 0o644)
	for name, entry := range map[string]string{
		"unknown project": `project = "nope"` + "\nkind = \"crash_metadata\"\npath = \"ok.json\"",
		"unknown kind":    `project = "detritus"` + "\nkind = \"metrics\"\npath = \"ok.json\"",
		"missing file":    `project = "detritus"` + "\nkind = \"crash_metadata\"\npath = \"none.json\"",
		"not json":        `project = "detritus"` + "\nkind = \"crash_metadata\"\npath = \"notjson.json\"",
		"invalid schema":  `project = "detritus"` + "\nkind = \"crash_metadata\"\npath = \"bad.json\"",
		"remote ref":      `project = "detritus"` + "\nkind = \"crash_metadata\"\npath = \"remote.json\"",
	} {
		if _, err := otlp.ParseTokenFileIn([]byte(tokenTOML+"\n[[schema]]\n"+entry+"\n"), dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tf, err := otlp.ParseTokenFileIn([]byte(tokenTOML+"\n[[schema]]\nproject = \"detritus\"\nkind = \"log_attributes\"\npath = \"ok.json\"\n"), dir)
	if err != nil || tf.Schemas == nil {
		t.Fatalf("valid schema: %v", err)
	}
}
