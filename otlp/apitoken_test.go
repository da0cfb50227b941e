package otlp_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

func apiToken(t *testing.T, db lodestone.OTLPTokenStore, name, project, prefix, secret string) *lodestone.OTLPToken {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	tok := &lodestone.OTLPToken{Name: name, Project: project, SourcePrefix: prefix, Hint: secret[:8],
		Hash: hex.EncodeToString(sum[:]), CreatedAt: time.Now().UTC()}
	if err := db.CreateOTLPToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// Tokens created through the API are accepted beside the token file's, scoped the same way, and refused once
// revoked.
func TestAPICreatedTokens(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	c := dial(t, e.addr)
	good := otlp.APITokenPrefix + "good-secret-0123456789abcdef"
	apiToken(t, e.db, "ci-gateway", "detritus", "detritus/gw-", good)

	ctx := withMD("authorization", "Bearer "+good, "x-protocol-version", "1")
	if _, err := c.Export(ctx, request(detritusResource("detritus", "gw-7"), 5, "api")); err != nil {
		t.Fatalf("export with an API-created token: %v", err)
	}
	got, err := e.db.FindLogs(context.Background(), lodestone.LogFilter{DeviceID: "gw-7", Limit: 10})
	if err != nil || len(got) != 5 {
		t.Fatalf("stored %d, %v", len(got), err)
	}
	// Its source prefix holds: another install of the project is refused.
	if _, err := c.Export(ctx, request(detritusResource("detritus", "other-1"), 1, "x")); status.Code(err) == codes.OK {
		t.Fatal("an API token wrote outside its source prefix")
	}

	// A revoked token and an unknown one are refused with UNAUTHENTICATED.
	revoked := otlp.APITokenPrefix + "revoked-secret-0123456789abcd"
	tok := apiToken(t, e.db, "old", "detritus", "detritus/", revoked)
	if err := e.db.RevokeOTLPToken(context.Background(), tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{revoked, otlp.APITokenPrefix + "never-issued"} {
		ctx := withMD("authorization", "Bearer "+secret, "x-protocol-version", "1")
		_, err := c.Export(ctx, request(detritusResource("detritus", "gw-7"), 1, "x"))
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("token %q: %v, want UNAUTHENTICATED", secret[:8], err)
		}
	}
	// The token file keeps working beside them.
	fileCtx := withMD("authorization", "Bearer secret-token", "x-protocol-version", "1")
	if _, err := c.Export(fileCtx, request(detritusResource("detritus", "gw-7"), 1, "file")); err != nil {
		t.Fatalf("file token: %v", err)
	}
}
