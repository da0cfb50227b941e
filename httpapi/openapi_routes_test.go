package httpapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
)

// Routes the rest of the suite answers only with errors, exercised here so that their successful answers are
// checked against the API description too (TestMain).

// TestCampaignPauseResumeAbortOverHTTP walks a campaign through pause, resume and abort.
func TestCampaignPauseResumeAbortOverHTTP(t *testing.T) {
	e := newEnv(t, opts{})
	for i := range 2 {
		if st, _, raw := e.post(nil, otaSession(fmt.Sprintf("d%d", i), "1.0", 10)); st != 200 {
			t.Fatalf("seed: %d %s", st, raw)
		}
	}
	a := e.upload(image(1000), "2.0", "20")
	body := fmt.Sprintf(`{"name":"pausable","firmware_id":%d,"device_ids":["d0","d1"]}`, a.Artifact.ID)
	st, _, raw := e.do("POST", "/ota/campaigns", []byte(body), true)
	var created struct {
		Campaign struct {
			ID int64 `json:"id"`
		} `json:"campaign"`
	}
	if st != 201 || json.Unmarshal(raw, &created) != nil {
		t.Fatalf("create: %d %s", st, raw)
	}
	type answer struct {
		OK              bool   `json:"ok"`
		Status          string `json:"status"`
		TargetsSet      *int   `json:"targets_set"`
		TargetsRestored *int   `json:"targets_restored"`
	}
	action := func(name string) answer {
		t.Helper()
		st, _, raw := e.do("POST", fmt.Sprintf("/ota/campaigns/%d/%s", created.Campaign.ID, name), nil, true)
		var a answer
		if st != 200 || json.Unmarshal(raw, &a) != nil || !a.OK {
			t.Fatalf("%s: %d %s", name, st, raw)
		}
		return a
	}
	if a := action("activate"); a.Status != "active" || a.TargetsSet == nil || *a.TargetsSet != 2 {
		t.Fatalf("activate: %+v", a)
	}
	if a := action("pause"); a.Status != "paused" || a.TargetsSet != nil {
		t.Fatalf("pause: %+v", a)
	}
	if a := action("resume"); a.Status != "active" || a.TargetsSet == nil {
		t.Fatalf("resume: %+v", a)
	}
	if a := action("abort"); a.Status != "aborted" || a.TargetsRestored == nil || *a.TargetsRestored != 2 {
		t.Fatalf("abort: %+v", a)
	}
}

func TestSigningKeyAndDeviceReportOverHTTP(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	e := newEnv(t, opts{signing: priv})
	st, _, raw := e.do("GET", "/ota/signing-key", nil, false) // public: devices fetch it
	var key struct {
		Algorithm string `json:"algorithm"`
		PublicKey string `json:"public_key"`
	}
	if st != 200 || json.Unmarshal(raw, &key) != nil || key.Algorithm != "ed25519" ||
		key.PublicKey != base64.StdEncoding.EncodeToString(pub) {
		t.Fatalf("signing key: %d %s", st, raw)
	}
	if st, _, raw := e.post(nil, otaSession("d0", "1.0", 10)); st != 200 {
		t.Fatalf("seed: %d %s", st, raw)
	}
	var rep struct {
		Devices []struct {
			DeviceID    string `json:"device_id"`
			RebootCount int64  `json:"reboot_count"`
		} `json:"devices"`
	}
	if st := e.get("/report/devices", &rep); st != 200 || len(rep.Devices) != 1 || rep.Devices[0].DeviceID != "d0" {
		t.Fatalf("report: %d %+v", st, rep)
	}
}
