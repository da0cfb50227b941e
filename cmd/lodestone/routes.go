package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// routesCmd prints the HTTP API's route table with each route's access: the same table the server registers
// and /openapi.json describes.
type routesCmd struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

const routesUsage = `Prints every HTTP route with the least access it needs (public, device, viewer, provisioner, admin) and a
summary. PUBLIC_EVENTS and PUBLIC_METRICS are read as serve reads them, since they open two routes.
The full description, with parameters and response schemas, is GET /openapi.json on a running server.

--json prints {"routes":[{"method","path","pattern","access","summary","description","tag","operation_id"}]};
every field is always present and the schema only grows.
`

// routeListing is one route of routes --json. Its fields are a contract (TestRoutesJSONSchema): add, never
// rename or remove.
type routeListing struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Pattern     string `json:"pattern"`
	Access      string `json:"access"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Tag         string `json:"tag"`
	OperationID string `json:"operation_id"`
}

func (c *routesCmd) spec() cmdSpec {
	return cmdSpec{use: "routes", short: "list the HTTP routes with their access and summary; --json",
		long: routesUsage, setup: func(fs *flag.FlagSet) runFunc {
			asJSON := fs.Bool("json", false, "print the routes as JSON")
			return func(ctx context.Context, _ []string) error {
				cfg := defaultConfig()
				wd, _ := os.Getwd()
				if err := loadEnv(&cfg, c.getenv, wd); err != nil {
					return err
				}
				// A server with no services registers the same routes as a running one; only its table is read.
				api := httpapi.New(httpapi.Config{PublicEvents: cfg.PublicEvents, PublicMetrics: cfg.PublicMetrics},
					httpapi.Deps{})
				routes := api.APIRoutes()
				out := make([]routeListing, len(routes))
				for i, r := range routes {
					out[i] = routeListing{Method: r.Method, Path: r.Path, Pattern: r.Pattern, Access: r.Access.String(),
						Summary: r.Summary, Description: r.Description, Tag: r.Tag(), OperationID: r.OperationID()}
				}
				if *asJSON {
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"routes": out})
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "METHOD\tPATH\tACCESS\tSUMMARY")
				for _, r := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Method, r.Path, r.Access, r.Summary)
				}
				return tw.Flush()
			}
		}}
}

func (c *routesCmd) Run(ctx context.Context, args []string) error {
	return runSpec(ctx, c.spec(), args, c.stdout, c.stderr)
}
