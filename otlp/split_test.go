package otlp_test

import (
	"regexp"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestGRPCRequestID: exports served by grpc-go's own transport (the shared port hands gRPC connections to it)
// answer with x-request-id as HTTP requests do: the client's, or a fresh UUID.
func TestGRPCRequestID(t *testing.T) {
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	e := newEnv(t, tokenTOML, nil)
	c := dial(t, e.addr)
	for _, sent := range []string{"abc-123", ""} {
		ctx := withMD("authorization", "Bearer secret-token")
		if sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", sent)
		}
		var hdr metadata.MD
		if _, err := c.Export(ctx, request(detritusResource("detritus", "install-42"), 1, "log"), grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		got := hdr.Get("x-request-id")
		if len(got) != 1 || sent != "" && got[0] != sent || sent == "" && !uuidRe.MatchString(got[0]) {
			t.Fatalf("sent %q, answered x-request-id %q", sent, got)
		}
	}
}
