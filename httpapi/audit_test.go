package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// apiAuditLog reads the audit log through GET /admin/audit, page by page, as a remote `lodestone audit verify`
// does.
type apiAuditLog struct {
	e *authEnv
	c cred
}

func (l apiAuditLog) AppendAudit(context.Context, *lodestone.AuditEntry) error {
	return lodestone.Errorf(lodestone.EINVALID, "read-only")
}

func (l apiAuditLog) FindAudit(_ context.Context, f lodestone.AuditFilter) ([]*lodestone.AuditEntry, error) {
	q := url.Values{"limit": {fmt.Sprint(f.Limit)}}
	if f.BeforeID > 0 {
		q.Set("before", fmt.Sprint(f.BeforeID))
	}
	page := l.page("/admin/audit?" + q.Encode())
	var out []*lodestone.AuditEntry
	for _, j := range page.Entries {
		e, err := j.Entry()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (l apiAuditLog) page(path string) httpapi.AuditPageJSON {
	l.e.t.Helper()
	a := l.e.do("GET", path, l.c, nil).must(l.e.t, 200)
	var p httpapi.AuditPageJSON
	if err := json.Unmarshal([]byte(a.raw), &p); err != nil {
		l.e.t.Fatalf("GET %s: %v", path, err)
	}
	return p
}

// TestAuditOperatorActions walks operator actions through the API, as the admin and as an API token, and finds an
// entry for each in GET /admin/audit: actor, action, target, the images a change has, the request, no secret;
// then pages through the log by its next links and verifies the chain from the JSON alone. On both backends.
func TestAuditOperatorActions(t *testing.T) {
	for _, tc := range backends {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			otlp, _ := store.(lodestone.OTLPTokenStore)
			e := newFerriteEnv(t, store, authOpts{apiKey: "fleet-key", otlpTokens: otlp})
			var secrets []string
			id := func(a answer, key string) string {
				t.Helper()
				m, ok := a.body[key].(map[string]any)
				if !ok {
					t.Fatalf("no %q in %s", key, a.raw)
				}
				return fmt.Sprint(int64(m["id"].(float64)))
			}

			// As the admin user.
			e.do("POST", "/admin/users", asAdmin, map[string]any{"name": "sam", "password": "sam-password-1",
				"role": "provisioner"}).must(t, 201)
			secrets = append(secrets, "sam-password-1")
			e.do("PUT", "/admin/users/sam", asAdmin, map[string]any{"password": "sam-password-2"}).must(t, 200)
			secrets = append(secrets, "sam-password-2")
			tok := e.do("POST", "/admin/tokens", asAdmin, map[string]any{"name": "ci", "role": "admin"}).must(t, 201)
			tokSecret := tok.body["secret"].(string)
			tokID := id(tok, "token")
			secrets = append(secrets, tokSecret, httpapi.HashToken(tokSecret))

			// As the API token.
			ci := bearer(tokSecret)
			e.do("POST", "/devices/register", ci, map[string]any{"device_key": "0x00C0FFEE", "device_id": "dev1"}).
				must(t, 200)
			e.do("PUT", "/devices/dev1", ci, map[string]any{"name": "bench unit"}).must(t, 200)
			key := e.do("POST", "/devices/dev1/keys", ci, map[string]any{"name": "factory"}).must(t, 201)
			keyID := id(key, "key")
			secrets = append(secrets, key.body["secret"].(string), httpapi.HashToken(key.body["secret"].(string)))
			e.do("DELETE", "/devices/dev1/keys/"+keyID, ci, nil).must(t, 204)
			g := id(e.do("POST", "/groups", ci, map[string]any{"name": "lab"}).must(t, 201), "group")
			e.do("PUT", "/groups/"+g, ci, map[string]any{"description": "bench units"}).must(t, 200)
			e.do("POST", "/groups/"+g+"/devices/dev1", ci, nil).must(t, 200)
			e.do("DELETE", "/groups/"+g+"/devices/dev1", ci, nil).must(t, 200)
			e.do("DELETE", "/groups/"+g, ci, nil).must(t, 200)
			ot := e.do("POST", "/admin/otlp-tokens", ci, map[string]any{"name": "gw", "project": "p"}).must(t, 201)
			otID := id(ot, "token")
			secrets = append(secrets, ot.body["secret"].(string), httpapi.HashToken(ot.body["secret"].(string)))
			e.do("DELETE", "/admin/otlp-tokens/"+otID, ci, nil).must(t, 204)

			fw := id(e.do("POST", "/ota/firmware", ci, image(4096), "X-Firmware-Version", "2.0", "X-Build-Id", "20").
				must(t, 200), "artifact")
			spare := id(e.do("POST", "/ota/firmware", ci, image(2048), "X-Firmware-Version", "2.1",
				"X-Build-Id", "21").must(t, 200), "artifact")
			e.do("DELETE", "/ota/firmware/"+spare, ci, nil).must(t, 200)
			e.do("POST", "/ota/targets", ci, map[string]any{"device_id": "dev1", "target_version": "2.0",
				"firmware_id": json.RawMessage(fw)}).must(t, 200)
			e.do("DELETE", "/ota/targets/dev1", ci, nil).must(t, 200)
			camp := id(e.do("POST", "/ota/campaigns", ci, map[string]any{"name": "to 2.0", "firmware_id": json.RawMessage(fw),
				"target_version": "2.0", "device_ids": []string{"dev1"}, "waves": []int{50, 100},
				"soak_seconds": 3600, "health_ratio": 0}).must(t, 201), "campaign")
			for _, act := range []string{"activate", "pause", "resume", "abort"} {
				e.do("POST", "/ota/campaigns/"+camp+"/"+act, ci, nil).must(t, 200)
			}

			// A crash issue from a device's fault, triaged by the admin.
			e.do("POST", "/ingest/chunks", apiKey("fleet-key"), session(t, "dev-c", "1.0.0", 0,
				testFault(t, elfO2))).must(t, 200)
			var crashID string
			deadline := time.Now().Add(time.Minute)
			for crashID == "" && time.Now().Before(deadline) {
				if gs, _ := e.do("GET", "/crashes", asAdmin, nil).must(t, 200).body["crash_groups"].([]any); len(gs) > 0 {
					crashID = fmt.Sprint(int64(gs[0].(map[string]any)["id"].(float64)))
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if crashID == "" {
				t.Fatal("no crash group within a minute")
			}
			e.do("PATCH", "/crashes/"+crashID, asAdmin, map[string]any{"state": "muted"}).must(t, 200)

			e.do("POST", "/admin/retention", asAdmin, nil).must(t, 200)
			backup := e.do("GET", "/admin/backup", asAdmin, nil).must(t, 200)
			if len(backup.raw) == 0 {
				t.Fatal("empty backup")
			}
			e.do("DELETE", "/devices/dev1", asAdmin, nil).must(t, 200)
			e.do("DELETE", "/admin/users/sam", asAdmin, nil).must(t, 204)
			e.do("DELETE", "/admin/tokens/"+tokID, asAdmin, nil).must(t, 204)

			// Page through the whole log by its next links, five at a time.
			log := apiAuditLog{e, asAdmin}
			var entries []httpapi.AuditEntryJSON
			var raw strings.Builder
			next := "/admin/audit?limit=5"
			for pages := 0; next != ""; pages++ {
				if pages > 100 {
					t.Fatal("next links do not end")
				}
				a := e.do("GET", next, asAdmin, nil)
				if a.status != 200 {
					t.Fatalf("page %d %s: %d %s %v", pages, next, a.status, a.raw, a.header)
				}
				raw.WriteString(a.raw)
				var p httpapi.AuditPageJSON
				if err := json.Unmarshal([]byte(a.raw), &p); err != nil {
					t.Fatal(err)
				}
				entries = append(entries, p.Entries...)
				next = ""
				if p.Next != nil {
					next = *p.Next
				}
			}
			for _, s := range secrets {
				if strings.Contains(raw.String(), s) {
					t.Errorf("the audit log holds the secret %q", s)
				}
			}

			type want struct {
				action, kind, target string
				actor                string
				before, after        bool
			}
			admin, token := "admin", "token:ci"
			wants := []want{
				{"user.create", "user", "sam", admin, false, true},
				{"user.update", "user", "sam", admin, true, true},
				{"token.create", "token", tokID, admin, false, true},
				{"device.register", "device", "dev1", token, false, true},
				{"device.update", "device", "dev1", token, true, true},
				{"device_key.create", "device_key", keyID, token, false, true},
				{"device_key.revoke", "device_key", keyID, token, true, true},
				{"group.create", "group", g, token, false, true},
				{"group.update", "group", g, token, true, true},
				{"group.add_device", "group_member", g + "/dev1", token, false, true},
				{"group.remove_device", "group_member", g + "/dev1", token, true, false},
				{"group.delete", "group", g, token, true, false},
				{"otlp_token.create", "otlp_token", otID, token, false, true},
				{"otlp_token.revoke", "otlp_token", otID, token, true, true},
				{"firmware.create", "firmware", fw, token, false, true},
				{"firmware.create", "firmware", spare, token, false, true},
				{"firmware.delete", "firmware", spare, token, true, false},
				{"ota_target.set", "ota_target", "dev1", token, false, true},
				{"ota_target.delete", "ota_target", "dev1", token, true, false},
				{"campaign.create", "campaign", camp, token, false, true},
				{"campaign.activate", "campaign", camp, token, true, true},
				{"campaign.pause", "campaign", camp, token, true, true},
				{"campaign.resume", "campaign", camp, token, true, true},
				{"campaign.abort", "campaign", camp, token, true, true},
				{"crash_issue.set_state", "crash_issue", crashID, admin, true, true},
				{"retention.run", "retention", "", admin, false, true},
				{"backup.download", "backup", "", admin, false, false},
				{"device.delete", "device", "dev1", admin, true, false},
				{"user.delete", "user", "sam", admin, true, false},
				{"token.revoke", "token", tokID, admin, true, true},
			}
			if len(entries) != len(wants) {
				var got []string
				for _, en := range entries {
					got = append(got, en.Action)
				}
				t.Fatalf("%d entries, want %d: %v", len(entries), len(wants), got)
			}
			for i, w := range wants {
				en := entries[len(entries)-1-i] // newest first
				if en.Action != w.action || en.TargetKind != w.kind || en.Target != w.target || en.Actor != w.actor {
					t.Errorf("entry %d: %s %s %q by %s, want %s %s %q by %s", en.ID, en.Action, en.TargetKind,
						en.Target, en.Actor, w.action, w.kind, w.target, w.actor)
					continue
				}
				if (string(en.Before) != "null") != w.before || (string(en.After) != "null") != w.after {
					t.Errorf("%s: before %s after %s, want before %v after %v", w.action, en.Before, en.After,
						w.before, w.after)
				}
				if en.ClientAddr != "127.0.0.1" || en.RequestID == "" || en.Via != lodestone.ViaAPI {
					t.Errorf("%s: request %q %q %q", w.action, en.ClientAddr, en.RequestID, en.Via)
				}
				if w.actor == token && (en.ActorKind != lodestone.ActorToken || en.ActorID != tokID) {
					t.Errorf("%s: actor %s %q, want the token %s", w.action, en.ActorKind, en.ActorID, tokID)
				}
				if w.actor == admin && en.ActorKind != lodestone.ActorUser {
					t.Errorf("%s: actor kind %s", w.action, en.ActorKind)
				}
			}
			if en := entries[len(entries)-5]; !strings.Contains(string(en.After), `"bench unit"`) ||
				strings.Contains(string(en.Before), `"bench unit"`) {
				t.Errorf("device.update images: %s -> %s", en.Before, en.After)
			}

			// Filters.
			if p := log.page("/admin/audit?actor=token:ci&action=group.*"); len(p.Entries) != 5 {
				t.Errorf("actor and action prefix: %d entries", len(p.Entries))
			}
			if p := log.page("/admin/audit?target=dev1&target_kind=device"); len(p.Entries) != 3 {
				t.Errorf("target: %d entries", len(p.Entries))
			}
			if p := log.page("/admin/audit?since=2999-01-01"); len(p.Entries) != 0 {
				t.Errorf("since the future: %d entries", len(p.Entries))
			}
			for _, bad := range []string{"before=0", "before=x", "since=yesterday", "limit=-1"} {
				a := e.do("GET", "/admin/audit?"+bad, asAdmin, nil).must(t, 400)
				if a.body["error"] == nil {
					t.Errorf("%s: %s", bad, a.raw)
				}
			}

			// The chain verifies from the JSON alone.
			head := log.page("/admin/audit?limit=1").Head
			v, err := lodestone.VerifyAuditChain(context.Background(), log, &head)
			if err != nil || !v.OK || v.Checked != int64(len(wants)) {
				t.Fatalf("verify through the API: %+v %v", v, err)
			}
		})
	}
}

// TestAuditRequestFromCaller: an in-process caller that set where the request came from (the MCP server) keeps
// its channel; the middleware fills in only what it left out.
func TestAuditRequestFromCaller(t *testing.T) {
	e := newFerriteEnv(t, openSQLite(t), authOpts{})
	h := e.srv.Config.Handler
	req, _ := http.NewRequest("POST", "/groups", strings.NewReader(`{"name":"mcp-made"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", adminPass)
	req.RemoteAddr = "198.51.100.9:4000"
	req = req.WithContext(lodestone.NewContextWithAuditRequest(req.Context(),
		lodestone.AuditRequest{Via: lodestone.ViaMCP}))
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.status != 201 {
		t.Fatalf("create through the handler: %d %s", rec.status, rec.body.String())
	}
	p := apiAuditLog{e, asAdmin}.page("/admin/audit")
	if len(p.Entries) != 1 || p.Entries[0].Via != lodestone.ViaMCP || p.Entries[0].ClientAddr != "198.51.100.9" ||
		p.Entries[0].RequestID == "" {
		t.Fatalf("entries %+v", p.Entries)
	}
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.status = code }

var _ io.Writer = (*recorder)(nil)

// TestAuditFUOTALogin: what the FUOTA login changes (an upload, a device's target and its removal) is audited
// with the login as the actor; its reads are not. On both backends.
func TestAuditFUOTALogin(t *testing.T) {
	bothBackends(t, func(t *testing.T, e *fuotaEnv) {
		if st, body := e.esp("PUT", "/files/app.bin", "version one"); st != 200 {
			t.Fatalf("PUT /files: %d %s", st, body)
		}
		if st, body := e.esp("PUT", "/devices/esp-1", `"esp-1","2.0","app.bin"`); st != 200 {
			t.Fatalf("PUT /devices: %d %s", st, body)
		}
		if st, body := e.esp("GET", "/devices", ""); st != 200 {
			t.Fatalf("GET /devices: %d %s", st, body)
		}
		if st, body := e.esp("DELETE", "/devices/esp-1", ""); st != 200 {
			t.Fatalf("DELETE /devices: %d %s", st, body)
		}
		p := apiAuditLog{e.authEnv, asAdmin}.page("/admin/audit")
		want := []string{"ota_target.fuota_delete", "ota_target.fuota_set", "firmware.fuota_put"}
		if len(p.Entries) != len(want) {
			t.Fatalf("%d entries, want %d: %+v", len(p.Entries), len(want), p.Entries)
		}
		for i, en := range p.Entries {
			if en.Action != want[i] || en.ActorKind != lodestone.ActorFUOTA || en.Actor != fuotaUser ||
				en.ClientAddr != "127.0.0.1" || en.RequestID == "" {
				t.Errorf("entry %d: %+v", i, en)
			}
			if strings.Contains(en.Actor+string(en.Before)+string(en.After), fuotaPass) {
				t.Errorf("entry %d holds the FUOTA password", i)
			}
		}
		if p.Entries[1].Target != "esp-1" || !strings.Contains(string(p.Entries[1].After), `"2.0"`) {
			t.Errorf("target entry: %+v after %s", p.Entries[1], p.Entries[1].After)
		}
	})
}
