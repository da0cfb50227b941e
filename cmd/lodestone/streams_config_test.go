package main

import (
	"io"
	"testing"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// The stream caps: defaults, environment, flags, 0 for no limit (httpapi's -1), negative refused.
func TestStreamLimitsConfig(t *testing.T) {
	env := map[string]string{}
	c := &serveCmd{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, dir: t.TempDir()}
	cfg, err := c.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.streamLimits(); got.Total != httpapi.DefaultMaxStreams || got.PerCredential != httpapi.DefaultMaxStreamsPerCredential {
		t.Fatalf("defaults: %+v", got)
	}
	env["LODESTONE_MAX_STREAMS"], env["LODESTONE_MAX_STREAMS_PER_CREDENTIAL"] = "50", "0"
	if cfg, err = c.config([]string{"--max-streams", "60"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.streamLimits(); got.Total != 60 || got.PerCredential != -1 {
		t.Fatalf("env and flags: %+v", got)
	}
	if _, err := c.config([]string{"--max-streams-per-credential", "-1"}); err == nil {
		t.Fatal("a negative cap was accepted")
	}
}
