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

	"github.com/spf13/cobra"
)

// symbolsCmd manages the ELF files crashes are symbolicated with, on a running server.
type symbolsCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const symbolsUsage = `  upload   send a firmware ELF file (with debug info) to a server, which then symbolicates that firmware's
           crashes, including those that arrived before the file

The server files the ELF under the version given and under the GNU build id inside it. Without --version the
version string the firmware embeds is used.

Credentials: --token (or LODESTONE_TOKEN) is sent as a bearer token; otherwise BASIC_AUTH_USER and
BASIC_AUTH_PASS are sent as Basic credentials. Uploading needs the provisioner role.

Examples:
  lodestone symbols upload build/firmware.elf --version 1.4.2
  lodestone symbols upload fw.elf --version 1.4.2 --server https://fleet.example.com --token $TOKEN --json
`

func (c *symbolsCmd) spec() cmdSpec {
	return cmdSpec{use: "symbols upload FILE --version V", short: "upload firmware ELF files for crash symbolication",
		long: symbolsUsage, args: usageArgs(exactArgs("upload", "FILE"), func(_ *cobra.Command, args []string) error {
			if args[0] != "upload" {
				return fmt.Errorf("unknown action %q: want 'upload FILE'", args[0])
			}
			return nil
		}),
		validArgs: []string{"upload"},
		setup: func(fs *flag.FlagSet) runFunc {
			server := fs.String("server", envOr(c.getenv, "LODESTONE_SERVER", "http://localhost:4000"),
				"server `URL` (env LODESTONE_SERVER)")
			token := fs.String("token", c.getenv("LODESTONE_TOKEN"), "API `token` (env LODESTONE_TOKEN)")
			ver := fs.String("version", "", "firmware `version` the ELF belongs to")
			asJSON := fs.Bool("json", false, "print the server's answer as JSON")
			timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
			return func(ctx context.Context, args []string) error {
				return c.upload(ctx, args[1], strings.TrimRight(*server, "/"), *token, *ver, *asJSON, *timeout)
			}
		}}
}

func (c *symbolsCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
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
		bar = newProgressBar(c.stderr, "upload", st.Size(), true)
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
