package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// remote is a lodestone server that a CLI command talks to over HTTP.
type remote struct {
	server string // base URL without a trailing slash
	token  string // API token, sent as Bearer
	user   string // Basic credentials when there is no token
	pass   string
	client *http.Client
}

// remoteFlags registers --server and --token; the server is empty unless given or set in LODESTONE_SERVER, which
// makes the command use the local database instead.
func remoteFlags(fs *flag.FlagSet, getenv func(string) string) (server, token *string) {
	server = fs.String("server", getenv("LODESTONE_SERVER"),
		"server `URL` to ask instead of the local database (env LODESTONE_SERVER)")
	token = fs.String("token", getenv("LODESTONE_TOKEN"),
		"API `token` for --server (env LODESTONE_TOKEN); otherwise BASIC_AUTH_USER/BASIC_AUTH_PASS are sent")
	return server, token
}

func newRemote(server, token string, getenv func(string) string, timeout time.Duration) *remote {
	r := &remote{server: strings.TrimRight(server, "/"), token: token, user: getenv("BASIC_AUTH_USER"),
		pass: getenv("BASIC_AUTH_PASS"), client: &http.Client{Timeout: timeout}}
	if r.user == "" {
		r.user = "admin"
	}
	return r
}

func (r *remote) request(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.server+path, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case r.token != "":
		req.Header.Set("Authorization", "Bearer "+r.token)
	case r.pass != "":
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return nil, fmt.Errorf("GET %s: server answered %s: %s", path, resp.Status, e.Error)
	}
	return resp, nil
}

// getJSON fetches path and decodes the JSON answer into out.
func (r *remote) getJSON(ctx context.Context, path string, out any) error {
	resp, err := r.request(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	return nil
}
