package httpapi

import (
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	for _, tc := range []struct {
		body, err string // err: a fragment of the error, "" for none
	}{
		{`{"name":"plain","tags":"ünïcödé ✓","n":1,"b":true,"z":null}`, ""},
		{`{"name":"a\\u0000b"}`, ""}, // an escaped backslash: the text \u0000, not NUL
		{`{"name":"a\u0000b"}`, `"name" contains a NUL`},
		{"{\"name\":\"a\xffb\"}", `"name" is not valid UTF-8`},
		{"{\"na\xffme\":\"x\"}", `is not valid UTF-8`},
		{`{"a\u0000":1}`, `contains a NUL`},
		{`{"role":"viewer","role":"admin"}`, `"role" is given more than once`},
		{`{"role":"viewer","Role":"admin"}`, `"Role" is given more than once`},
		{`{"status":"a","\u017ftatus":"b"}`, `is given more than once`}, // encoding/json reads ſ as s
		{`{"key":"a","\u212aey":"b"}`, `is given more than once`},       // and the Kelvin sign as k
		{`{"a":{"b":1},"c":{"b":2}}`, ""},                               // the same key in two objects
		{`{"t":{"v":[1,{"x":"\u0000"}]}}`, `"t.v[1].x" contains a NUL`},
		{`[{"a":1},{"a":1,"a":2}]`, `"[1].a" is given more than once`},
		{`"\u0000"`, `"body" contains a NUL`},
		{`{"a":`, ""}, // syntax errors are the decoder's to word
	} {
		err := checkJSON([]byte(tc.body), false)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want %q", tc.body, err, tc.err)
		}
	}
	// Shallow: the rows of a bulk body are checked one by one later; only the top level is checked here.
	if err := checkJSON([]byte(`[{"a":1,"a":2},"x\u0000"]`), true); err == nil || !strings.Contains(err.Error(), `"[1]"`) {
		t.Errorf("shallow: %v", err)
	}
	if err := checkJSON([]byte(`[{"a":1,"a":{"b":"\u0000"}}]`), true); err != nil {
		t.Errorf("shallow looked into a row: %v", err)
	}
}
