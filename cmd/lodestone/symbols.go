package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// symbolsCmd manages the ELF files crashes are symbolicated with, on a running server.
type symbolsCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const symbolsUsage = `Usage: lodestone symbols upload FILE --version V [flags]

  upload   send a firmware ELF file (with debug info) to a server, which then symbolicates that firmware's
           crashes, including those that arrived before the file

The server files the ELF under the version given and under the GNU build id inside it. Without --version the
version string the firmware embeds is used.

Credentials: --token (or LODESTONE_TOKEN) is sent as a bearer token; otherwise BASIC_AUTH_USER and
BASIC_AUTH_PASS are sent as Basic credentials. Uploading needs the provisioner role.

Examples:
  lodestone symbols upload build/firmware.elf --version 1.4.2
  lodestone symbols upload fw.elf --version 1.4.2 --server https://fleet.example.com --token $TOKEN --json

Flags:
`

func (c *symbolsCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "upload" {
		fmt.Fprint(c.stderr, symbolsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return flag.ErrHelp
		}
		return fmt.Errorf("symbols: want 'upload FILE'")
	}
	fs := flag.NewFlagSet("symbols upload", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	server := fs.String("server", envOr(c.getenv, "LODESTONE_SERVER", "http://localhost:4000"),
		"server `URL` (env LODESTONE_SERVER)")
	token := fs.String("token", c.getenv("LODESTONE_TOKEN"), "API `token` (env LODESTONE_TOKEN)")
	ver := fs.String("version", "", "firmware `version` the ELF belongs to")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, symbolsUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after FILE.
	var files []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) != 1 {
		fs.Usage()
		return fmt.Errorf("symbols upload: want exactly one FILE, got %d", len(files))
	}
	return c.upload(ctx, files[0], strings.TrimRight(*server, "/"), *token, *ver, *asJSON, *timeout)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func (c *symbolsCmd) upload(ctx context.Context, path, server, token, version string, asJSON bool,
	timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("symbols upload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("symbols upload: %w", err)
	}
	var body io.Reader = f
	var bar *progressBar
	if !asJSON {
		bar = newProgressBar(c.stderr, "upload", st.Size(), bytesize)
		body = &progressReader{r: f, bar: bar}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/ingest/elf", body)
	if err != nil {
		return fmt.Errorf("symbols upload: %w", err)
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Filename", filepath.Base(path))
	if version != "" {
		req.Header.Set("X-Firmware-Version", version)
	}
	switch user, pass := c.getenv("BASIC_AUTH_USER"), c.getenv("BASIC_AUTH_PASS"); {
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	case pass != "":
		if user == "" {
			user = "admin"
		}
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("symbols upload: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("symbols upload: read answer: %w", err)
	}
	if bar != nil {
		bar.Done(st.Size())
	}
	var ans struct {
		Error string `json:"error"`
		ELF   struct {
			ID       int64  `json:"id"`
			Version  string `json:"version"`
			BuildID  string `json:"build_id"`
			SHA256   string `json:"sha256"`
			Size     int64  `json:"size"`
			Filename string `json:"filename"`
		} `json:"elf"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("symbols upload: server answered %s: %.200q", resp.Status, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("symbols upload: server answered %s: %s", resp.Status, ans.Error)
	}
	if asJSON {
		_, err := c.stdout.Write(raw)
		return err
	}
	e := ans.ELF
	build := e.BuildID
	if build == "" {
		build = "(none)"
	}
	fmt.Fprintf(c.stdout, "uploaded %s as ELF %d: version %s, build id %s, %s\n", e.Filename, e.ID, e.Version,
		build, bytesize(e.Size))
	return nil
}

// progressReader reports bytes read to a progress bar.
type progressReader struct {
	r   io.Reader
	n   int64
	bar *progressBar
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.bar.Set(p.n)
	return n, err
}
