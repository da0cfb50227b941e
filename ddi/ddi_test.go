package ddi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "00:00:01", time.Second: "00:00:01", 5 * time.Minute: "00:05:00",
		26*time.Hour + 61*time.Second: "26:01:01", 1000 * time.Hour: "99:59:59"} {
		if got := Sleep(d); got != want {
			t.Errorf("Sleep(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestFeedbackAsClientsSendIt(t *testing.T) {
	for name, body := range map[string]string{
		// SWUpdate: a numeric id, progress, details.
		"swupdate": `{"id": 7, "time": "20260101T101010", "status": {"result": {"progress": {"cnt": 1, "of": 1},
			"finished": "none"}, "execution": "proceeding", "details": ["All Chunks Installed."]}}`,
		// Zephyr and hawkBit's examples: a string id, no details.
		"zephyr":      `{"id":"7","status":{"execution":"closed","result":{"finished":"success"}}}`,
		"downloading": `{"id":null,"status":{"execution":"downloading","result":{}}}`,
	} {
		var f Feedback
		if err := json.Unmarshal([]byte(body), &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := f.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var f Feedback
	json.Unmarshal([]byte(`{"id":7,"status":{"execution":"downloading"}}`), &f)
	if _, err := f.Validate(); err != nil || f.Status.Execution != Download || f.Status.Result.Finished != None {
		t.Fatalf("defaults: %+v %v", f, err)
	}
	for _, bad := range []string{`{"status":{}}`, `{"status":{"execution":"closed","result":{"finished":"maybe"}}}`,
		`{"status":{"execution":"exploded"}}`} {
		var f Feedback
		json.Unmarshal([]byte(bad), &f)
		if _, err := f.Validate(); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := json.Unmarshal([]byte(`{"id":{"x":1}}`), &f); err == nil {
		t.Error("an object id accepted")
	}
}

func TestConfigDataValidate(t *testing.T) {
	ok := ConfigData{Data: map[string]string{"hwRevision": "2"}}
	if err := ok.Validate(); err != nil || ok.Mode != "merge" {
		t.Fatalf("%v %q", err, ok.Mode)
	}
	for _, c := range []ConfigData{{Mode: "merge"}, {Mode: "x", Data: map[string]string{}},
		{Data: map[string]string{"": "v"}}, {Data: map[string]string{"k": strings.Repeat("v", 513)}},
		{Data: map[string]string{"k\n": "v"}}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// FuzzFeedback: whatever a controller posts, reading it never panics, and what is kept is one bounded line.
func FuzzFeedback(f *testing.F) {
	f.Add(`{"id":1,"status":{"execution":"closed","result":{"finished":"success"},"details":["ok"]}}`)
	f.Add(`{"id":"x","status":{"execution":"proceeding","details":["a\nb","` + strings.Repeat("z", 3000) + `"]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var fb Feedback
		if json.Unmarshal([]byte(body), &fb) != nil {
			return
		}
		detail, err := fb.Validate()
		if err != nil {
			return
		}
		if len(detail) > MaxDetail || strings.ContainsAny(detail, "\n\r\x00") {
			t.Fatalf("detail %q", detail)
		}
	})
}
