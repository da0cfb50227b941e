package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/blob/disk"
	"github.com/lodestone-fleet/lodestone/doctor"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

// TestAdminDoctor serves GET /admin/doctor over a real store and blob store on both backends: the admin gets the
// report in its stable shape, a viewer 403 and no credentials 401.
func TestAdminDoctor(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T) lodestone.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.open(t)
			ctx := context.Background()
			log := slog.New(slog.DiscardHandler)
			admin, _, err := httpapi.NewBasicAuth(ctx, store, "admin", adminPass)
			if err != nil {
				t.Fatal(err)
			}
			authn, err := httpapi.NewAuthn(httpapi.AuthConfig{Admin: admin, Users: "viewer:viewer-pass:viewer",
				Logger: log, BcryptCost: bcrypt.MinCost})
			if err != nil {
				t.Fatal(err)
			}
			blobs, err := disk.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d := doctor.Deps{DataDir: t.TempDir(), Ping: store.(httpapi.Pinger).Ping, Blobs: blobs, Settings: store,
				DBName: tc.name}
			api := httpapi.New(httpapi.Config{}, httpapi.Deps{Devices: store, Telemetry: store, Auth: authn,
				Logger: log, Doctor: func(ctx context.Context) doctor.Report { return doctor.Run(ctx, doctor.Checks(d)) }})
			srv := httptest.NewServer(api.Handler())
			defer srv.Close()

			get := func(user, pass string) (int, []byte) {
				req, _ := http.NewRequest("GET", srv.URL+"/admin/doctor", nil)
				if user != "" {
					req.SetBasicAuth(user, pass)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			if code, _ := get("", ""); code != http.StatusUnauthorized {
				t.Fatalf("no credentials: %d", code)
			}
			if code, _ := get("viewer", "viewer-pass"); code != http.StatusForbidden {
				t.Fatalf("viewer: %d", code)
			}
			code, body := get("admin", adminPass)
			if code != http.StatusOK {
				t.Fatalf("admin: %d %s", code, body)
			}
			var rep map[string]any
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}
			sum := rep["summary"].(map[string]any)
			for _, k := range []string{"overall", "ok", "warn", "error", "not_checked"} {
				if _, ok := sum[k]; !ok {
					t.Errorf("summary lacks %q: %s", k, body)
				}
			}
			status := map[string]string{}
			for _, c := range rep["checks"].([]any) {
				m := c.(map[string]any)
				for _, k := range []string{"name", "status", "message", "details"} {
					if _, ok := m[k]; !ok {
						t.Errorf("check %v lacks %q", m["name"], k)
					}
				}
				status[m["name"].(string)] = m["status"].(string)
			}
			for name, want := range map[string]string{"database": "ok", "data_dir": "ok", "blob_store": "ok",
				"backup": "warn", "configuration": "not_checked", "fuota_certificate": "not_checked"} {
				if status[name] != want {
					t.Errorf("%s = %q, want %q (%s)", name, status[name], want, body)
				}
			}
			if sum["overall"] != "warn" || !slices.Contains([]any{float64(0)}, sum["error"]) {
				t.Errorf("summary %v", sum)
			}
		})
	}
}
