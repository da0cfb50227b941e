package otlp

import (
	"encoding/json"
	"testing"
)

// FuzzCrashMetadata: any metadata part either fails with a 4xx or normalises to valid JSON that parses again to
// the same normal form.
func FuzzCrashMetadata(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"source":{"project":"p","platform":"linux","version":"1","install_id":"{11111111-1111-1111-1111-111111111111}"},"timestamp":"2026-05-19T10:11:12.000001Z","kind":"Minidump","build":{"git_sha":"a","profile":"r","target_triple":"t"},"context":null,"attachments":[{"key":"k","content_type":"c","len":1}]}`))
	f.Add([]byte(`{"schema_version":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		md, e := parseCrashMetadata(raw)
		if e != nil {
			if e.status < 400 || e.status > 499 {
				t.Fatalf("status %d", e.status)
			}
			return
		}
		norm := md.normalized(nil)
		if !json.Valid([]byte(norm)) {
			t.Fatalf("normalised metadata is not JSON: %s", norm)
		}
		again, e := parseCrashMetadata([]byte(norm))
		if e != nil {
			t.Fatalf("normalised metadata rejected: %v: %s", e.msg, norm)
		}
		if n2 := again.normalized(nil); n2 != norm {
			t.Fatalf("not stable:\n%s\n%s", norm, n2)
		}
	})
}
