package otlp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/otlp"
)

func metadataJSON(project, install string, version int) string {
	return fmt.Sprintf(`{"schema_version":%d,"source":{"project":%q,"platform":"linux","version":"0.1.0",
		"install_id":%q},"timestamp":"2026-05-19T10:11:12.345+02:00","kind":"PanicTarball",
		"build":{"git_sha":"abcdef0","profile":"release","target_triple":"x86_64-unknown-linux-gnu"},
		"panic_text":"boom","context":{"k":1},"attachments":[{"key":"sdk-config","filename":"sdk-config.json",
		"content_type":"application/json","len":2}],"unknown_field":true}`, version, project, install)
}

type part struct {
	name, ctype, enc string
	body             []byte
}

// envelope builds a multipart body the way detritus' client writes it.
func envelope(parts ...part) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.SetBoundary("detritus-boundary-v1")
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.name != "\x00" {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"`, p.name))
		} else {
			h.Set("Content-Disposition", `form-data`)
		}
		if p.ctype != "" {
			h.Set("Content-Type", p.ctype)
		}
		if p.enc != "" {
			h.Set("Content-Encoding", p.enc)
		}
		w, _ := mw.CreatePart(h)
		w.Write(p.body)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func postCrash(t *testing.T, e *env, ctype string, body []byte, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestCrashUploadDedupAndIndex(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	dump := make([]byte, 1<<20)
	for i := range dump {
		dump[i] = byte(i % 251)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	zdump := enc.EncodeAll(dump, nil)
	sum := sha256.Sum256(zdump)
	id := hex.EncodeToString(sum[:])
	ct, body := envelope(part{"metadata", "application/json", "", []byte(metadataJSON("detritus", strings.ToUpper(installID), 1))},
		part{"dump", "application/octet-stream", "zstd", zdump},
		part{"attach:sdk-config", "application/json", "", []byte(`{}`)})

	if st, m := postCrash(t, e, ct, body, ""); st != 401 || errMsg(m) != "missing bearer token" || m["error"].(map[string]any)["code"] != 401.0 {
		t.Fatalf("no token: %d %v", st, m)
	}
	st, m := postCrash(t, e, ct, body, "secret-token")
	if st != 201 || m["id"] != id || m["dedup"] != false {
		t.Fatalf("first upload: %d %v", st, m)
	}
	st, m = postCrash(t, e, ct, body, "secret-token")
	if st != 201 || m["id"] != id || m["dedup"] != true {
		t.Fatalf("second upload: %d %v", st, m)
	}
	n := 0
	if err := e.blobs.Walk(context.Background(), func(lodestone.BlobRef) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2 { // one dump, one attachment
		t.Fatalf("%d blobs stored", n)
	}
	ups, err := e.db.FindCrashUploads(context.Background(), lodestone.CrashUploadFilter{Project: "detritus", InstallID: installID})
	if err != nil || len(ups) != 2 {
		t.Fatalf("index: %d %v", len(ups), err)
	}
	u := ups[1]
	if u.Dump.SHA256 != id || u.Dump.Size != int64(len(zdump)) || u.DumpEncoding != "zstd" || u.Dedup ||
		len(u.Attachments) != 1 || u.Attachments[0].Key != "sdk-config" || u.Attachments[0].ContentType != "application/json" ||
		u.Kind != "PanicTarball" || u.TokenID != "detritus-prod" || !ups[0].Dedup {
		t.Fatalf("upload %+v", u)
	}
	var md map[string]any
	json.Unmarshal([]byte(u.Metadata), &md)
	if md["timestamp"] != "2026-05-19T08:11:12.345Z" || md["source"].(map[string]any)["install_id"] != installID ||
		md["unknown_field"] != nil || md["schema_version"] != 1.0 {
		t.Fatalf("normalised metadata %s", u.Metadata)
	}

	// The metrics are valid OpenMetrics and carry detritus' names.
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	text, _ := io.ReadAll(resp.Body)
	dec := expfmt.NewDecoder(bytes.NewReader(text), expfmt.Format(resp.Header.Get("Content-Type")))
	fams := map[string]bool{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("OpenMetrics parse: %v\n%s", err, text)
		}
		fams[mf.GetName()] = true
	}
	for _, name := range []string{"detritus_requests", "detritus_request_duration_seconds", "detritus_bytes_ingested",
		"detritus_dedup_hits", "detritus_writer_queue_depth", "detritus_janitor_cycles", "detritus_janitor_blobs_freed",
		"detritus_janitor_bytes_freed", "detritus_janitor_cycle_duration_seconds"} {
		if !fams[name] && !fams[name+"_total"] {
			t.Errorf("metric %s missing", name)
		}
	}
	if !bytes.Contains(text, []byte(`detritus_requests_total{endpoint="crashes",status="201"} 2`)) ||
		!bytes.Contains(text, []byte("detritus_dedup_hits_total 1")) {
		t.Errorf("counters:\n%s", text)
	}
	if resp, _ := http.Get("http://" + e.addr + "/healthz"); resp.StatusCode != 204 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

func TestCrashUploadErrors(t *testing.T) {
	e := newEnv(t, tokenTOML, func(c *otlp.Config) { c.MaxDumpBytes = 100 })
	md := func(v int) part {
		return part{"metadata", "application/json", "", []byte(metadataJSON("detritus", installID, v))}
	}
	dump := part{"dump", "", "", []byte("dump")}
	cases := []struct {
		name   string
		parts  []part
		ctype  string
		status int
		msg    string
	}{
		{"empty", nil, "", 400, "missing multipart part `metadata`"},
		{"dump first", []part{dump, md(1)}, "", 400, "first multipart part must be `metadata`"},
		{"bad json", []part{{"metadata", "", "", []byte("{")}, dump}, "", 400, "invalid crash metadata"},
		{"missing field", []part{{"metadata", "", "", []byte(`{"schema_version":1}`)}, dump}, "", 400, "missing field `source`"},
		{"big metadata", []part{{"metadata", "", "", bytes.Repeat([]byte(" "), 65537)}, dump}, "", 413, "payload exceeds maximum size of 65536 bytes"},
		{"version 2", []part{md(2), dump}, "", 412, "protocol version 2 does not match 1"},
		{"traversal", []part{{"metadata", "", "", []byte(metadataJSON("../escape", installID, 1))}, dump}, "", 400, "invalid storage path component `project`: `../escape`"},
		{"other project", []part{{"metadata", "", "", []byte(metadataJSON("rs-modde", installID, 1))}, dump}, "", 403, "token is not permitted to write this source"},
		{"no dump", []part{md(1)}, "", 400, "missing multipart part `dump`"},
		{"two metadata", []part{md(1), md(1), dump}, "", 400, "metadata part must appear exactly once"},
		{"two dumps", []part{md(1), dump, dump}, "", 400, "dump part must appear exactly once"},
		{"unknown part", []part{md(1), dump, {"x", "", "", nil}}, "", 400, "unexpected part `x`"},
		{"unnamed part", []part{md(1), {"\x00", "", "", nil}}, "", 400, "multipart part is missing a name"},
		{"big dump", []part{md(1), {"dump", "", "", make([]byte, 101)}}, "", 413, "payload exceeds maximum size of 100 bytes"},
		{"big attachment", []part{md(1), dump, {"attach:x", "", "", make([]byte, 101)}}, "", 413, "payload exceeds maximum size of 100 bytes"},
		{"no content type", []part{md(1), dump}, "-", 400, "missing content-type header"},
		{"not multipart", []part{md(1), dump}, "application/json", 400, "missing multipart boundary"},
	}
	for _, tc := range cases {
		ct, body := envelope(tc.parts...)
		switch tc.ctype {
		case "-":
			ct = ""
		case "":
		default:
			ct = tc.ctype
		}
		st, m := postCrash(t, e, ct, body, "secret-token")
		if st != tc.status || !strings.Contains(errMsg(m), tc.msg) || m["error"].(map[string]any)["code"] != float64(tc.status) {
			t.Errorf("%s: %d %q; want %d %q", tc.name, st, errMsg(m), tc.status, tc.msg)
		}
	}
	if ups, _ := e.db.FindCrashUploads(context.Background(), lodestone.CrashUploadFilter{}); len(ups) != 0 {
		t.Fatalf("%d uploads indexed by failed requests", len(ups))
	}
	// Blobs stored by failed uploads are orphans that the janitor removes.
	if _, err := e.srv.RunJanitor(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := e.blobs.Walk(context.Background(), func(lodestone.BlobRef) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d blobs left after failed uploads", n)
	}
}

func TestCrashRateLimit(t *testing.T) {
	toml := strings.Replace(tokenTOML, "crashes_burst = 100", "crashes_burst = 0", 1)
	e := newEnv(t, toml, nil)
	ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))}, part{"dump", "", "", []byte("d")})
	if st, m := postCrash(t, e, ct, body, "secret-token"); st != 429 || errMsg(m) != "crash rate limit exceeded" {
		t.Fatalf("%d %v", st, m)
	}
}

// TestCrashUploadOverH2C: detritus' tests upload with HTTP/2 prior knowledge on the gRPC port.
func TestCrashUploadOverH2C(t *testing.T) {
	e := newEnv(t, tokenTOML, nil)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	ct, body := envelope(part{"metadata", "", "", []byte(metadataJSON("detritus", installID, 1))}, part{"dump", "", "zstd", []byte("h2c dump")})
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/v1/crashes", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer secret-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 201 {
		t.Fatalf("h2c upload: %s %d", resp.Proto, resp.StatusCode)
	}
}
