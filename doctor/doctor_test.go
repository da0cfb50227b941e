package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

func find(t *testing.T, r Report, name string) Result {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s", name)
	return Result{}
}

func TestNotCheckedNeverPassesAndPanicIsAnError(t *testing.T) {
	r := Run(context.Background(), []Check{
		{"a", func(context.Context) Result { return notChecked("cannot") }},
		{"b", func(context.Context) Result { panic("boom") }},
		{"c", func(context.Context) Result { return Result{} }},
	})
	if r.Summary != (Summary{Overall: Error, Error: 1, NotChecked: 2}) {
		t.Fatalf("summary %+v", r.Summary)
	}
	if r.Checks[1].Name != "b" || !strings.Contains(r.Checks[1].Message, "boom") || r.Checks[2].Details == nil {
		t.Fatalf("%+v", r.Checks)
	}
	only := Run(context.Background(), []Check{{"a", func(context.Context) Result { return notChecked("x") }}})
	if only.Summary.Overall != OK || only.Failed() {
		t.Fatalf("not_checked only: %+v", only.Summary)
	}
}

func TestTextOutputColour(t *testing.T) {
	r := Run(context.Background(), []Check{{"x", func(context.Context) Result { return warn("hm", nil) }}})
	var plain, col bytes.Buffer
	WriteText(&plain, r, false)
	WriteText(&col, r, true)
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(col.String(), "\x1b[33m") {
		t.Fatalf("plain %q colour %q", plain.String(), col.String())
	}
}

type fakeSettings map[string]string

func (f fakeSettings) Setting(_ context.Context, k string) (string, error) {
	if v, ok := f[k]; ok {
		return v, nil
	}
	return "", lodestone.Errorf(lodestone.ENOTFOUND, "no %s", k)
}

func (f fakeSettings) SetSettingIfAbsent(_ context.Context, k, v string) (bool, error) {
	if _, ok := f[k]; ok {
		return false, nil
	}
	f[k] = v
	return true, nil
}

func TestChecksOnDeps(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	s := fakeSettings{}
	d := Deps{Now: func() time.Time { return now }, Settings: s, RetentionDays: 0,
		Counts: func(context.Context) (lodestone.FleetCounts, error) {
			return lodestone.FleetCounts{Metrics: retentionWarnRows + 1}, nil
		},
		Ping:          func(context.Context) error { return nil },
		Migrations:    func(context.Context) (schema.Status, error) { return schema.Status{Current: 5, Latest: 5}, nil },
		NewestApplied: func(context.Context) (int64, error) { return 9, nil },
		DBNow:         func(context.Context) (time.Time, error) { return time.Now().Add(5 * time.Second), nil },
		Replicas:      func(context.Context) (int, error) { return 0, errors.New("down") },
		Skip:          map[string]string{"disk": "not here"},
	}
	r := Run(ctx, Checks(d))
	for name, want := range map[string]Status{"retention": Warn, "migrations": Error, "clock_skew": Warn,
		"replicas": NotChecked, "backup": Warn, "disk": NotChecked, "configuration": NotChecked} {
		if got := find(t, r, name); got.Status != want {
			t.Errorf("%s = %s %q, want %s", name, got.Status, got.Message, want)
		}
	}
	if find(t, r, "disk").Message != "not here" {
		t.Error("Skip reason not used")
	}

	RecordBackup(ctx, s, now.AddDate(0, 0, -2))
	d.NewestApplied = nil
	d.Migrations = func(context.Context) (schema.Status, error) {
		return schema.Status{Current: 4, Latest: 5, Pending: []int64{5}}, nil
	}
	r = Run(ctx, Checks(d))
	if b := find(t, r, "backup"); b.Status != OK || b.Details["age_hours"] != 48 {
		t.Errorf("backup %+v", b)
	}
	if m := find(t, r, "migrations"); m.Status != Warn {
		t.Errorf("behind: %+v", m)
	}
}

func TestOIDCDiscovery(t *testing.T) {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"%s/jwks"}`, issuer, issuer)
	}))
	defer srv.Close()
	issuer = srv.URL
	ctx := context.Background()
	if r := (Deps{OIDCIssuer: srv.URL}).oidc(ctx); r.Status != OK {
		t.Fatalf("%+v", r)
	}
	if r := (Deps{OIDCIssuer: srv.URL + "/other"}).oidc(ctx); r.Status != Error {
		t.Fatalf("wrong path: %+v", r)
	}
	issuer = "https://elsewhere.example"
	if r := (Deps{OIDCIssuer: srv.URL}).oidc(ctx); r.Status != Error || !strings.Contains(r.Message, "names issuer") {
		t.Fatalf("issuer mismatch: %+v", r)
	}
	if r := (Deps{}).oidc(ctx); r.Status != NotChecked {
		t.Fatalf("unset: %+v", r)
	}
}
