package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// bearer adds an Authorization header to every request of an MCP client.
type bearer struct {
	auth string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", b.auth)
	return b.next.RoundTrip(r)
}

// mcpConnect opens an MCP session to a server's /mcp with the SDK's streamable HTTP client.
func mcpConnect(t *testing.T, server, auth string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "lodestone-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: server + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{auth, http.DefaultTransport}, Timeout: time.Minute}}, nil)
	if err != nil {
		t.Fatalf("connect to %s/mcp: %v", server, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

// callTool calls a tool and decodes its JSON answer; isError says whether the tool reported an error.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (out map[string]any, isError bool) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d contents", name, len(res.Content))
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		t.Fatalf("%s answered no JSON object: %q", name, text)
	}
	return out, res.IsError
}

// apiCall sends a JSON request with Basic admin credentials (or auth when set) and decodes the answer.
func apiCall(t *testing.T, method, url, auth string, body []byte, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", auth)
	if body != nil && len(hdr) == 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// mcpFleet is a real server with a symbolicated crash, an active campaign and tokens of each role.
type mcpFleet struct {
	bin, dataDir, server string
	admin                string // Authorization header value
	tokens               map[string]string
	campaignID           float64
	local                []string // the flags that open its database locally
}

// newMCPFleet starts serve with serveArgs (the database) on a fresh data directory.
func newMCPFleet(t *testing.T, serveArgs ...string) *mcpFleet {
	const pass = "mcp-test-pass"
	f := &mcpFleet{bin: buildBinary(t), dataDir: t.TempDir(), admin: basicAuth("admin", pass),
		tokens: map[string]string{}}
	f.local = append([]string{"--data-dir", f.dataDir}, serveArgs...)
	p := startWith(t, f.bin, f.dataDir, serveArgs, "BASIC_AUTH_PASS="+pass)
	f.server = "http://" + p.addr
	for _, role := range []string{"viewer", "provisioner", "admin"} {
		st, ans := apiCall(t, "POST", f.server+"/admin/tokens", f.admin,
			[]byte(fmt.Sprintf(`{"name":"mcp-%s","role":%q}`, role, role)))
		if st != 201 {
			t.Fatalf("create %s token: %d %v", role, st, ans)
		}
		f.tokens[role] = ans["secret"].(string)
	}

	// The ELF of firmware 2.0.0, then a fault of a device running it, in write_register.
	elfPath := filepath.Join("..", "..", "symbol", "testdata", "firmware-O2.elf")
	env := func(k string) string {
		if k == "BASIC_AUTH_PASS" {
			return pass
		}
		return ""
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"symbols", "upload", elfPath, "--version", "2.0.0", "--server", f.server},
		io.Discard, &stderr, env); code != 0 {
		t.Fatalf("symbols upload: %s", stderr.String())
	}
	ef, err := elf.Open(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := ef.Symbols()
	ef.Close()
	var pc uint32
	for _, s := range syms {
		if s.Name == "write_register" {
			pc = uint32(s.Value &^ 1)
		}
	}
	for _, dev := range []string{"mcp-dev-1", "mcp-dev-2"} {
		body := chunk.Chunk{Type: chunk.TypeDeviceInfo, Flags: chunk.FlagLast,
			Payload: chunk.DeviceInfo{DeviceID: dev, FirmwareVersion: "2.0.0"}.AppendPayload(nil)}.Encode()
		body = append(body, chunk.Chunk{Type: chunk.TypeFaultRecord, Flags: chunk.FlagLast, Seq: 1,
			Payload: chunk.Fault{Type: 3, PC: pc, SP: 0x20001f00, CFSR: 1 << 25}.AppendPayload(nil)}.Encode()...)
		resp, err := http.Post(f.server+"/ingest/chunks", "application/octet-stream", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("ingest: %v %v", err, resp)
		}
		resp.Body.Close()
	}

	// A firmware image and an active campaign over both devices.
	st, ans := apiCall(t, "POST", f.server+"/ota/firmware", f.admin, bytes.Repeat([]byte{0xA5}, 4096),
		"X-Firmware-Version", "2.1.0", "X-Build-Id", "21", "Content-Type", "application/octet-stream")
	if st != 200 {
		t.Fatalf("firmware upload: %d %v", st, ans)
	}
	fwID := ans["artifact"].(map[string]any)["id"].(float64)
	st, ans = apiCall(t, "POST", f.server+"/ota/campaigns", f.admin, []byte(fmt.Sprintf(
		`{"name":"to 2.1","firmware_id":%v,"target_version":"2.1.0","device_ids":["mcp-dev-1","mcp-dev-2"],`+
			`"waves":[100],"soak_seconds":0,"health_ratio":0}`, fwID)))
	if st != 201 {
		t.Fatalf("create campaign: %d %v", st, ans)
	}
	f.campaignID = ans["campaign"].(map[string]any)["id"].(float64)
	if st, ans := apiCall(t, "POST", fmt.Sprintf("%s/ota/campaigns/%v/activate", f.server, f.campaignID), f.admin,
		nil); st != 200 {
		t.Fatalf("activate: %d %v", st, ans)
	}
	return f
}

// waitSymbolicated polls the crash issues through MCP until the fault's backtrace names write_register.
func waitSymbolicated(t *testing.T, cs *mcp.ClientSession) (issue map[string]any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, isErr := callTool(t, cs, "list_crash_issues", map[string]any{"state": "open"})
		groups, _ := list["crash_groups"].([]any)
		if !isErr && len(groups) == 1 {
			id := groups[0].(map[string]any)["id"]
			issue, isErr = callTool(t, cs, "get_crash_issue", map[string]any{"id": id})
			raw, _ := json.Marshal(issue)
			if !isErr && strings.Contains(string(raw), `"symbol_state":"done"`) &&
				strings.Contains(string(raw), `"function":"write_register"`) {
				return issue
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no symbolicated crash issue through MCP: %v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func campaignStatus(t *testing.T, cs *mcp.ClientSession, id float64) string {
	t.Helper()
	out, isErr := callTool(t, cs, "get_campaign", map[string]any{"id": id})
	if isErr {
		t.Fatalf("get_campaign: %v", out)
	}
	return out["campaign"].(map[string]any)["campaign"].(map[string]any)["status"].(string)
}

func TestMCPOverStreamableHTTP(t *testing.T) {
	f := newMCPFleet(t)

	// No credentials, no MCP.
	if st, _ := apiCall(t, "POST", f.server+"/mcp", "", []byte(`{}`)); st != 401 {
		t.Fatalf("POST /mcp without credentials: %d", st)
	}

	viewer := mcpConnect(t, f.server, "Bearer "+f.tokens["viewer"])
	prov := mcpConnect(t, f.server, "Bearer "+f.tokens["provisioner"])
	vt, pt := toolNames(t, viewer), toolNames(t, prov)
	for _, name := range []string{"fleet_summary", "list_devices", "device_faults", "get_crash_issue", "get_campaign",
		"search_logs"} {
		if !slices.Contains(vt, name) || !slices.Contains(pt, name) {
			t.Errorf("read tool %s missing: viewer %v, provisioner %v", name, vt, pt)
		}
	}
	for _, name := range []string{"resolve_crash_issue", "set_ota_target", "pause_campaign", "confirm"} {
		if slices.Contains(vt, name) {
			t.Errorf("a viewer sees the write tool %s", name)
		}
		if !slices.Contains(pt, name) {
			t.Errorf("a provisioner lacks %s: %v", name, pt)
		}
	}
	// Basic credentials of a user work too.
	if names := toolNames(t, mcpConnect(t, f.server, f.admin)); !slices.Contains(names, "pause_campaign") {
		t.Errorf("admin user's tools: %v", names)
	}

	// A symbolicated crash, read through MCP.
	issue := waitSymbolicated(t, viewer)
	group := issue["group"].(map[string]any)
	if group["affected_device_count"].(float64) != 2 || group["state"] != "open" {
		t.Errorf("crash issue %v", group)
	}
	sum, isErr := callTool(t, viewer, "fleet_summary", nil)
	if isErr || sum["devices"].(float64) != 2 || sum["crash_issues"].(map[string]any)["open"].(float64) != 1 {
		t.Errorf("fleet_summary %v", sum)
	}
	devs, _ := callTool(t, viewer, "list_devices", map[string]any{"limit": 1})
	if n := len(devs["devices"].([]any)); n != 1 {
		t.Errorf("list_devices limit 1: %d devices", n)
	}
	faults, _ := callTool(t, viewer, "device_faults", map[string]any{"id": "mcp-dev-1"})
	if n := len(faults["faults"].([]any)); n != 1 {
		t.Errorf("device_faults: %v", faults)
	}
	// Bad arguments are a tool error saying what is wrong, never a crash.
	if out, isErr := callTool(t, viewer, "list_devices", map[string]any{"status": "asleep"}); !isErr ||
		out["error_kind"] != "invalid" || !strings.Contains(out["error"].(string), "status") {
		t.Errorf("bad status: %v", out)
	}
	if out, isErr := callTool(t, viewer, "get_device", map[string]any{"id": "nobody"}); !isErr ||
		out["error_kind"] != "not_found" || out["status"].(float64) != 404 {
		t.Errorf("unknown device: %v", out)
	}

	// A viewer cannot pause: the tool does not exist for it.
	if _, err := viewer.CallTool(t.Context(), &mcp.CallToolParams{Name: "pause_campaign",
		Arguments: map[string]any{"id": f.campaignID}}); err == nil {
		t.Fatal("a viewer called pause_campaign")
	}
	if campaignStatus(t, viewer, f.campaignID) != "active" {
		t.Fatal("campaign not active")
	}

	// The first step changes nothing and answers a token.
	args := map[string]any{"id": f.campaignID}
	prep, isErr := callTool(t, prov, "pause_campaign", args)
	token, _ := prep["confirmation_token"].(string)
	if isErr || !strings.HasPrefix(token, "cfm_") || prep["confirmation_required"] != true {
		t.Fatalf("pause_campaign first step: %v", prep)
	}
	cur := prep["current"].(map[string]any)["campaign"].(map[string]any)["campaign"].(map[string]any)
	if cur["status"] != "active" || prep["would"].(map[string]any)["path"] != fmt.Sprintf("/ota/campaigns/%v/pause", f.campaignID) {
		t.Errorf("preview %v", prep)
	}
	if campaignStatus(t, viewer, f.campaignID) != "active" {
		t.Fatal("the first step paused the campaign")
	}
	// Other arguments: refused, and the token is spent.
	out, isErr := callTool(t, prov, "confirm", map[string]any{"confirmation_token": token, "tool": "pause_campaign",
		"arguments": map[string]any{"id": f.campaignID + 1}})
	if !isErr || out["error_kind"] != "confirmation_mismatch" {
		t.Fatalf("changed arguments: %v", out)
	}
	out, isErr = callTool(t, prov, "confirm", map[string]any{"confirmation_token": token, "tool": "pause_campaign",
		"arguments": args})
	if !isErr || out["error_kind"] != "confirmation_invalid" {
		t.Fatalf("spent token: %v", out)
	}
	// Another caller (the admin token) cannot redeem the provisioner's token.
	prep, _ = callTool(t, prov, "pause_campaign", args)
	admin := mcpConnect(t, f.server, "Bearer "+f.tokens["admin"])
	out, isErr = callTool(t, admin, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "pause_campaign", "arguments": args})
	if !isErr || out["error_kind"] != "confirmation_mismatch" || !strings.Contains(out["error"].(string), "another caller") {
		t.Fatalf("other caller: %v", out)
	}
	if campaignStatus(t, viewer, f.campaignID) != "active" {
		t.Fatal("a refused confirmation paused the campaign")
	}
	// The right token, caller and arguments: paused, with the API's own answer.
	prep, _ = callTool(t, prov, "pause_campaign", args)
	confirm := map[string]any{"confirmation_token": prep["confirmation_token"], "tool": "pause_campaign",
		"arguments": args}
	out, isErr = callTool(t, prov, "confirm", confirm)
	if isErr || out["ok"] != true || out["status"] != "paused" {
		t.Fatalf("confirm: %v", out)
	}
	if campaignStatus(t, viewer, f.campaignID) != "paused" {
		t.Fatal("campaign not paused after confirm")
	}
	// A reused token fails.
	if out, isErr := callTool(t, prov, "confirm", confirm); !isErr || out["error_kind"] != "confirmation_invalid" {
		t.Fatalf("reused token: %v", out)
	}

	// Resolving the crash issue takes the same two steps.
	crash := map[string]any{"id": group["id"]}
	prep, _ = callTool(t, prov, "resolve_crash_issue", crash)
	out, isErr = callTool(t, prov, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "resolve_crash_issue", "arguments": crash})
	if isErr || out["group"].(map[string]any)["state"] != "resolved" {
		t.Fatalf("resolve: %v", out)
	}
	// A write without its confirmation step is refused by confirm's own checks: a made-up token.
	if out, isErr := callTool(t, prov, "confirm", map[string]any{"confirmation_token": "cfm_made-up",
		"tool": "set_ota_target", "arguments": map[string]any{"device_id": "mcp-dev-1", "target_version": "3"}}); !isErr ||
		out["error_kind"] != "confirmation_invalid" {
		t.Fatalf("made-up token: %v", out)
	}
}

// lodestone mcp over stdio, started by the SDK's CommandTransport: against a running server with a token, and
// over the local database read-only, on both backends.
func TestMCPOverStdio(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testMCPOverStdio(t, newMCPFleet(t)) })
	t.Run("postgres", func(t *testing.T) { testMCPOverStdio(t, newMCPFleet(t, "--db", pgtest.URL(t))) })
}

func testMCPOverStdio(t *testing.T, f *mcpFleet) {
	connect := func(args ...string) *mcp.ClientSession {
		cmd := exec.Command(f.bin, append([]string{"mcp"}, args...)...)
		cmd.Dir = f.dataDir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		c := mcp.NewClient(&mcp.Implementation{Name: "lodestone-test", Version: "1"}, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("lodestone mcp %v: %v\n%s", args, err, stderr.String())
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}

	remote := connect("--server", f.server, "--token", f.tokens["provisioner"])
	if names := toolNames(t, remote); !slices.Contains(names, "pause_campaign") || !slices.Contains(names, "confirm") {
		t.Errorf("provisioner over stdio: %v", names)
	}
	waitSymbolicated(t, remote)
	args := map[string]any{"id": f.campaignID}
	prep, _ := callTool(t, remote, "pause_campaign", args)
	if campaignStatus(t, remote, f.campaignID) != "active" {
		t.Fatal("the first step paused the campaign")
	}
	out, isErr := callTool(t, remote, "confirm", map[string]any{"confirmation_token": prep["confirmation_token"],
		"tool": "pause_campaign", "arguments": args})
	if isErr || out["status"] != "paused" || campaignStatus(t, remote, f.campaignID) != "paused" {
		t.Fatalf("confirm over stdio: %v", out)
	}
	if names := toolNames(t, connect("--server", f.server, "--token", f.tokens["viewer"])); slices.Contains(names,
		"pause_campaign") || slices.Contains(names, "confirm") {
		t.Errorf("viewer over stdio sees writes: %v", names)
	}

	local := connect(f.local...)
	names := toolNames(t, local)
	for _, w := range []string{"resolve_crash_issue", "set_ota_target", "pause_campaign", "confirm"} {
		if slices.Contains(names, w) {
			t.Errorf("the read-only local mode offers %s", w)
		}
	}
	issue := waitSymbolicated(t, local)
	if issue["group"].(map[string]any)["occurrence_count"].(float64) != 2 {
		t.Errorf("local crash issue %v", issue["group"])
	}
	if campaignStatus(t, local, f.campaignID) != "paused" {
		t.Error("local mode does not see the campaign paused")
	}
	sum, isErr := callTool(t, local, "fleet_summary", nil)
	if isErr || sum["devices"].(float64) != 2 {
		t.Errorf("local fleet_summary %v", sum)
	}
	for tool, args := range map[string]map[string]any{"list_devices": nil, "search_logs": {"q": "boot"},
		"device_metrics": {"id": "mcp-dev-1"}, "device_reboots": {"id": "mcp-dev-2"}, "list_campaigns": nil} {
		if out, isErr := callTool(t, local, tool, args); isErr {
			t.Errorf("local %s: %v", tool, out)
		}
	}
}
