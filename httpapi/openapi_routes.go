package httpapi

import (
	"net/http"

	"github.com/lodestone-fleet/lodestone/doctor"
)

// routeDocs is the metadata of every route, keyed by the pattern exactly as registered with s.handle. The
// OpenAPI document, `lodestone routes` and the MCP tools come from it.
//
// It is merged from one table per area (coreDocs and adminDocs here, otaDocs in openapi_routes_ota.go); a new
// feature may bring its own table in its own file and add it to mergeDocs below.
//
// To add a route: register it with s.handle as usual, then add an entry to its area's table under the same
// pattern string:
//
//	"GET /widgets/{id}": {
//		Summary:     "Get a widget",                       // one line, imperative
//		Description: "What it returns and when to use it.", // for operators and AI agents
//		Params:      []Param{{Name: "id", Description: "widget id", Type: int64(0)}}, // path params optional
//		Body:        &Body{Type: widgetRequest{}},          // JSON body: a value of the type decoded; nil: none
//		Responses:   []Reply{{Status: 200, Type: widgetReply{}}}, // the Go type written; a named envelope
//		Errors:      []int{404},                            // route-specific error statuses
//	},
//
// A handler that writes a map literal gets a named envelope type in openapi_types.go. Non-JSON answers give
// ContentType with a nil Type (text/event-stream, application/octet-stream). `go test ./httpapi/ -run
// OpenAPI` then checks that every registered route has an entry, and that every response the test suite
// produces matches it; if the route adds response fields, regenerate the contract snapshot with
// LODESTONE_UPDATE_CONTRACT=1 go test ./httpapi/ -run TestOpenAPIContract.
var routeDocs = mergeDocs(coreDocs, adminDocs, otaDocs, ddiDocs, seriesDocs, auditDocs, mcpDocs, alertDocs,
	stabilityDocs)

// mergeDocs joins the per-area tables; a pattern in two of them is a programming error caught at start.
func mergeDocs(tables ...map[string]RouteDoc) map[string]RouteDoc {
	out := map[string]RouteDoc{}
	for _, t := range tables {
		for p, d := range t {
			if _, dup := out[p]; dup {
				panic("httpapi: route metadata for " + p + " given twice")
			}
			out[p] = d
		}
	}
	return out
}

// coreDocs: health, ingest, the read API, events, ELFs and crashes.
var coreDocs = map[string]RouteDoc{
	"GET /health": {
		Summary:     "Liveness",
		Description: "Answers while the process runs; it checks nothing else. Use /readyz for readiness.",
		Responses:   []Reply{{Status: 200, Type: healthReply{}, Example: healthReply{Status: "ok"}}},
	},
	"GET /readyz": {
		Summary: "Readiness",
		Description: "200 when the database and blob store answer and the server is not shutting down; 503 " +
			"with the reason otherwise. Load balancers route on it.",
		Responses: []Reply{{Status: 200, Type: readyReply{}, Example: readyReply{Status: "ready"}}},
	},
	"GET /auth/mode": {
		Summary:     "How to log in",
		Description: "basic, or oidc with the issuer and client id a browser login needs.",
		Responses:   []Reply{{Status: 200, Type: authModeReply{}, Example: authModeReply{Mode: "basic"}}},
	},
	"GET /openapi.json": {
		Summary: "This API description",
		Description: "The OpenAPI 3.1 document of every route, generated from the route table. Each operation's " +
			"x-lodestone-access names the least access it needs.",
		Responses: []Reply{{Status: 200, Type: openAPIDocument{}}},
	},
	"POST /ingest/chunks": {
		Summary: "Upload device chunks",
		Description: "ferrite's ingest: a body of one or more binary ferrite chunks from a device or gateway. " +
			"200 when all were stored, 207 when some were refused (the valid ones are kept), 400 when none " +
			"could be. 4xx means the data can never be accepted (drop it); 5xx and 503 with Retry-After mean " +
			"retry. A device posting alone gets the update on offer to it (ota).",
		Params: []Param{
			{Name: "X-Device-Id", In: "header", Description: "the device, for chunks before its DeviceInfo"},
		},
		Body: &Body{ContentType: "application/octet-stream", Description: "ferrite chunks, back to back"},
		Responses: []Reply{
			{Status: 200, Type: ingestResponse{}, Description: "every chunk stored",
				Example: ingestResponse{OK: true, ChunksReceived: 3}},
			{Status: 207, Type: ingestResponse{}, Description: "some chunks refused; the rest stored",
				Example: ingestResponse{ChunksReceived: 3, Errors: []string{"chunk 2: crc mismatch"}}},
		},
		Errors:        []int{http.StatusRequestEntityTooLarge},
		FerriteErrors: true,
	},

	"GET /devices": {
		Summary: "List devices",
		Description: "The fleet's devices, last seen first unless sort/order say otherwise. Filter by status, " +
			"group, tag or firmware version; page with limit and offset (the order always ends with the row " +
			"id, so pages are stable).",
		Params:    deviceListParams,
		Responses: []Reply{{Status: 200, Type: devicesReply{}, Example: devicesReply{Devices: []deviceJSON{exampleDevice}}}},
	},
	"GET /devices/{id}": {
		Summary:     "Get a device",
		Description: "One device by device_id, or by its hex device key as ferrite's clients send it (A300F1B2).",
		Params:      []Param{deviceIDParam},
		Responses:   []Reply{{Status: 200, Type: deviceReply{}, Example: deviceReply{Device: exampleDevice}}},
		Errors:      []int{http.StatusNotFound},
	},
	"GET /devices/{id}/faults": {
		Summary:     "List a device's faults",
		Description: "Hard faults reported by one device, newest first, with registers, symbols and backtrace.",
		Params:      append([]Param{deviceIDParam}, telemetryParams...),
		Responses:   []Reply{{Status: 200, Type: faultsReply{}}},
	},
	"GET /devices/{id}/metrics": {
		Summary:     "List a device's metrics",
		Description: "Metric samples of one device, newest first; key= selects one metric.",
		Params:      append([]Param{deviceIDParam, metricKeyParam}, telemetryParams...),
		Responses:   []Reply{{Status: 200, Type: metricsReply{}}},
	},
	"GET /devices/{id}/reboots": {
		Summary:   "List a device's reboots",
		Params:    append([]Param{deviceIDParam}, telemetryParams...),
		Responses: []Reply{{Status: 200, Type: rebootsReply{}}},
	},
	"GET /devices/{id}/heartbeats": {
		Summary:   "List a device's heartbeats",
		Params:    append([]Param{deviceIDParam}, telemetryParams...),
		Responses: []Reply{{Status: 200, Type: heartbeatsReply{}}},
	},
	"GET /devices/{id}/traces": {
		Summary:   "List a device's trace buffers",
		Params:    append([]Param{deviceIDParam}, telemetryParams...),
		Responses: []Reply{{Status: 200, Type: tracesReply{}}},
	},
	"GET /faults": {
		Summary:     "List faults",
		Description: "Hard faults of the whole fleet, newest first.",
		Params:      telemetryParams,
		Responses:   []Reply{{Status: 200, Type: faultsReply{}}},
	},
	"GET /metrics": {
		Summary:   "List metrics",
		Params:    append([]Param{metricKeyParam}, telemetryParams...),
		Responses: []Reply{{Status: 200, Type: metricsReply{}}},
	},
	"GET /reboots": {
		Summary:   "List reboots",
		Params:    telemetryParams,
		Responses: []Reply{{Status: 200, Type: rebootsReply{}}},
	},

	"GET /events/stream": {
		Summary: "Live events",
		Description: "Server-sent events: one event per committed batch of device data (type and device in " +
			"the data). Resume with Last-Event-ID (header or last_event_id=). Streams per credential and per " +
			"server are capped (429/503 with Retry-After).",
		Params: []Param{
			{Name: "device_id", Description: "only this device's events"},
			{Name: "last_event_id", Type: int64(0), Description: "resume after this event id"},
			{Name: "Last-Event-ID", In: "header", Description: "resume after this event id"},
		},
		Responses: []Reply{{Status: 200, ContentType: "text/event-stream", Description: "an endless event stream"}},
	},

	"POST /ingest/elf": {
		Summary: "Upload an ELF",
		Description: "The firmware's ELF file (raw body), for symbolication of faults with its build id. The " +
			"same bytes again answer the stored ELF.",
		Params:    []Param{{Name: "X-Firmware-Version", In: "header", Description: "the firmware version it builds"}},
		Body:      &Body{ContentType: "application/octet-stream", Description: "the ELF file"},
		Responses: []Reply{{Status: 200, Type: elfUploadReply{}}},
		Errors:    []int{http.StatusRequestEntityTooLarge},
	},
	"GET /elfs": {
		Summary:   "List ELFs",
		Params:    pageParams,
		Responses: []Reply{{Status: 200, Type: elfsReply{}}},
	},
	"GET /elfs/{id}": {
		Summary:   "Get an ELF's record",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: elfReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"DELETE /elfs/{id}": {
		Summary:     "Delete an ELF",
		Description: "Faults already symbolicated keep their symbols.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 200, Type: okReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"GET /crashes": {
		Summary: "List crash groups",
		Description: "Faults grouped by signature (crash issues), most recent first, with counts, affected " +
			"devices and state (open, resolved, muted, merged).",
		Params: append([]Param{{Name: "state", Enum: []string{"open", "resolved", "muted", "merged"},
			Description: "only groups in this state"}}, pageParams...),
		Responses: []Reply{{Status: 200, Type: crashGroupsReply{}}},
	},
	"GET /crashes/{id}": {
		Summary:     "Get a crash group",
		Description: "The group and its occurrences, newest first, with symbolicated backtraces and causes.",
		Params:      append([]Param{{Name: "id", Type: int64(0)}}, telemetryParams...),
		Responses:   []Reply{{Status: 200, Type: crashReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"PATCH /crashes/{id}": {
		Summary: "Set a crash group's state",
		Description: "Resolve, ignore or reopen a crash issue. A resolved issue that recurs on a newer " +
			"firmware reopens as a regression.",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Body:      &Body{Type: crashPatchRequest{}, Example: map[string]string{"state": "resolved"}},
		Responses: []Reply{{Status: 200, Type: crashGroupReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	},
	"POST /crashes/{id}/merge": {
		Summary:     "Merge a crash group into another",
		Description: "The group's faults move to the target group; this one is marked merged_into.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Body:        &Body{Type: crashMergeRequest{}, Example: map[string]int{"into": 7}},
		Responses:   []Reply{{Status: 200, Type: crashGroupReply{}}},
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	},
}

// adminDocs: users, tokens, device keys, fleet management, groups, logs, OTLP tokens, backups and operations.
var adminDocs = map[string]RouteDoc{
	"GET /auth/me": {
		Summary:   "Who am I",
		Responses: []Reply{{Status: 200, Type: authMeReply{}}},
	},
	"GET /admin/users": {
		Summary:     "List users",
		Description: "Managed users and the one from BASIC_AUTH_* (source env, read-only). No password hashes.",
		Responses:   []Reply{{Status: 200, Type: usersReply{}}},
	},
	"POST /admin/users": {
		Summary:   "Create a user",
		Body:      &Body{Type: userRequest{}, Example: map[string]string{"name": "ops", "password": "a long passphrase", "role": "viewer"}},
		Responses: []Reply{{Status: 201, Type: userReply{}}},
		Errors:    []int{http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"PUT /admin/users/{name}": {
		Summary: "Change a user's password or role, or disable or enable them",
		Description: "A new password or `disabled: true` ends the user's console sessions; a new role applies to " +
			"them at once. A disabled user is kept with their history but refused at sign-in. Nobody disables or " +
			"deletes their own account (409).",
		Body:      &Body{Type: userRequest{}},
		Responses: []Reply{{Status: 200, Type: userReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"DELETE /admin/users/{name}": {
		Summary:     "Delete a user",
		Description: "Ends the user's console sessions. Nobody deletes their own account (409).",
		Responses:   []Reply{{Status: 204, Description: "deleted"}},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	},
	"GET /admin/tokens": {
		Summary:   "List API tokens",
		Responses: []Reply{{Status: 200, Type: tokensReply{}}},
	},
	"POST /admin/tokens": {
		Summary:     "Create an API token",
		Description: "The secret is in the answer once; keep it. Use it as Authorization: Bearer.",
		Body:        &Body{Type: tokenRequest{}, Example: map[string]string{"name": "ci", "role": "viewer"}},
		Responses:   []Reply{{Status: 201, Type: tokenCreated{}}},
		Errors:      []int{http.StatusUnprocessableEntity},
	},
	"DELETE /admin/tokens/{id}": {
		Summary:   "Revoke an API token",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 204, Description: "revoked"}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /devices/{id}/keys": {
		Summary:   "List a device's keys",
		Params:    []Param{{Name: "id", Description: "the device_id"}},
		Responses: []Reply{{Status: 200, Type: deviceKeysReply{}}},
	},
	"POST /devices/{id}/keys": {
		Summary: "Create a device key",
		Description: "A key (lsd_...) that lets one device post its own data and fetch its updates. The " +
			"secret is in the answer once. The body is optional (default name \"default\").",
		Params:    []Param{{Name: "id", Description: "the device_id"}},
		Body:      &Body{Type: tokenRequest{}, Optional: true},
		Responses: []Reply{{Status: 201, Type: deviceKeyCreated{}}},
		Errors:    []int{http.StatusUnprocessableEntity},
	},
	"DELETE /devices/{id}/keys/{key}": {
		Summary:   "Revoke a device key",
		Params:    []Param{{Name: "id", Description: "the device_id"}, {Name: "key", Type: int64(0), Description: "the key's id"}},
		Responses: []Reply{{Status: 204, Description: "revoked"}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /admin/doctor": {
		Summary: "Run the health checks",
		Description: "The doctor report: ordered checks with ok, warn, error or not_checked and a summary. " +
			"Only error makes the overall status error.",
		Responses: []Reply{{Status: 200, Type: doctor.Report{}}},
	},

	"POST /devices/register": {
		Summary:     "Register a device",
		Description: "Provision a device by its device key before it reports, with a device_id, name and tags.",
		Body:        &Body{Type: registration{}, Example: map[string]string{"device_key": "A300F1B2", "device_id": "pump-7", "name": "Pump 7"}},
		Responses:   []Reply{{Status: 200, Type: deviceReply{}}},
		Errors:      []int{http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"POST /devices/register/bulk": {
		Summary: "Register devices in bulk",
		Description: "An array of registrations; valid rows are registered even when others fail (207 with " +
			"per-row results).",
		Body: &Body{Type: []registration{}},
		Responses: []Reply{
			{Status: 200, Type: bulkRegisterReply{}, Description: "every row registered"},
			{Status: 207, Type: bulkRegisterReply{}, Description: "some rows refused; see results"},
		},
		Errors: []int{http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
	},
	"PUT /devices/{id}": {
		Summary:   "Rename or retag a device",
		Params:    []Param{deviceIDParam},
		Body:      &Body{Type: deviceUpdate{}, Example: map[string]string{"name": "Pump 7", "tags": "site-a,pumps"}},
		Responses: []Reply{{Status: 200, Type: deviceReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	},
	"DELETE /devices/{id}": {
		Summary:     "Delete a device",
		Description: "The device and all its data. Not reversible.",
		Params:      []Param{deviceIDParam},
		Responses:   []Reply{{Status: 200, Type: okReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"DELETE /admin/devices/{deviceID}": {
		Summary:     "Delete a device by device_id",
		Description: "The device and all its data. Not reversible.",
		Responses:   []Reply{{Status: 200, Type: okReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"GET /groups": {
		Summary:   "List device groups",
		Responses: []Reply{{Status: 200, Type: groupsReply{}}},
	},
	"POST /groups": {
		Summary:   "Create a device group",
		Body:      &Body{Type: groupRequest{}, Example: map[string]string{"name": "site-a"}},
		Responses: []Reply{{Status: 201, Type: groupReply{}}},
		Errors:    []int{http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"GET /groups/{id}": {
		Summary:   "Get a device group",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: groupReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"PUT /groups/{id}": {
		Summary:   "Rename or describe a device group",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Body:      &Body{Type: groupRequest{}},
		Responses: []Reply{{Status: 200, Type: groupReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"DELETE /groups/{id}": {
		Summary:     "Delete a device group",
		Description: "The devices stay. A group that a running campaign targets is 409.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 200, Type: okReply{}}},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	},
	"GET /groups/{id}/devices": {
		Summary:     "List a group's devices",
		Description: "The members, with the device list's filters and order.",
		Params:      append([]Param{{Name: "id", Type: int64(0)}}, deviceListParams...),
		Responses:   []Reply{{Status: 200, Type: devicesReply{}}},
	},
	"POST /groups/{id}/devices/{device_id}": {
		Summary:   "Add a device to a group",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: okReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"DELETE /groups/{id}/devices/{device_id}": {
		Summary:   "Remove a device from a group",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: okReply{}}},
		Errors:    []int{http.StatusNotFound},
	},

	"GET /logs": {
		Summary:     "Search device logs",
		Description: "OTLP log records, newest first; q= matches the body text.",
		Params:      logParams,
		Responses:   []Reply{{Status: 200, Type: logsReply{}}},
	},
	"GET /logs/stream": {
		Summary:     "Tail device logs",
		Description: "Server-sent events of new log records matching the same filters as GET /logs.",
		Params:      append(logParams[:len(logParams):len(logParams)], Param{Name: "Last-Event-ID", In: "header"}),
		Responses:   []Reply{{Status: 200, ContentType: "text/event-stream", Description: "an endless event stream"}},
	},
	"GET /crash-uploads": {
		Summary:     "List crash dump uploads",
		Description: "Crash reports received from detritus clients, newest first.",
		Params: append([]Param{{Name: "project"}, {Name: "install_id"}},
			telemetryParams...),
		Responses: []Reply{{Status: 200, Type: crashUploadsReply{}}},
	},

	"GET /admin/otlp-tokens": {
		Summary:   "List OTLP ingest tokens",
		Responses: []Reply{{Status: 200, Type: otlpTokensReply{}}},
	},
	"POST /admin/otlp-tokens": {
		Summary:     "Create an OTLP ingest token",
		Description: "A token for the OTLP receiver (detritus clients). The secret is in the answer once.",
		Body:        &Body{Type: otlpTokenRequest{}, Example: map[string]string{"name": "app", "project": "pumps"}},
		Responses:   []Reply{{Status: 201, Type: otlpTokenCreated{}}},
		Errors:      []int{http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"DELETE /admin/otlp-tokens/{id}": {
		Summary:   "Revoke an OTLP ingest token",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 204, Description: "revoked"}},
		Errors:    []int{http.StatusNotFound},
	},

	"GET /admin/backup": {
		Summary:     "Download a backup",
		Description: "A consistent snapshot of the SQLite database, streamed. One backup runs at a time (503).",
		Responses: []Reply{{Status: 200, ContentType: "application/x-sqlite3", Description: "the database file",
			Headers: map[string]string{"X-Backup-Taken": "when the snapshot was taken (RFC 3339)",
				"Content-Disposition": "attachment; filename=lodestone-backup-<time>.db"}}},
	},
	"GET /report/devices": {
		Summary:     "Device report",
		Description: "Devices with their fault, metric and reboot counts.",
		Params: append([]Param{{Name: "status", Enum: []string{"unknown", "provisioned", "online", "offline"}}},
			pageParams...),
		Responses: []Reply{{Status: 200, Type: reportDevicesReply{}}},
	},

	"GET /metrics/prometheus": {
		Summary:     "Prometheus metrics",
		Description: "The server's metrics in the Prometheus text format.",
		Responses:   []Reply{{Status: 200, ContentType: "text/plain", Description: "Prometheus exposition format"}},
	},
	"GET /admin/retention": {
		Summary:   "Retention settings and last purge",
		Responses: []Reply{{Status: 200, Type: retentionReply{}}},
	},
	"POST /admin/retention": {
		Summary:     "Purge old data now",
		Description: "Runs the retention purge on this replica while the caller waits; answers the settings and this run.",
		Responses:   []Reply{{Status: 200, Type: retentionReply{}}},
		Errors:      []int{http.StatusConflict},
	},
	"GET /admin/alerts/deliveries": {
		Summary: "List alert deliveries",
		Description: "Webhook deliveries of alerts, newest first, with their attempts and last error. Webhook " +
			"URLs show scheme and host only.",
		Params: append([]Param{{Name: "status", Enum: []string{"pending", "delivered", "failed"}}},
			pageParams...),
		Responses: []Reply{{Status: 200, Type: deliveriesReply{}}},
	},
}
var exampleDevice = func() deviceJSON {
	name, tags := "Pump 7", "site-a,pumps"
	key := int64(0xA300F1B2)
	return deviceJSON{ID: 7, DeviceID: "pump-7", FirmwareVersion: "1.4.0", BuildID: 42,
		FirstSeen: "2026-01-05 09:12:44", LastSeen: "2026-03-01 17:02:10", DeviceKey: &key, Name: &name,
		Status: "online", Tags: &tags}
}()

var (
	deviceIDParam  = Param{Name: "id", Description: "device_id, or the hex device key (A300F1B2)"}
	metricKeyParam = Param{Name: "key", Description: "only this metric"}
	pageParams     = []Param{
		{Name: "limit", Type: 0, Description: "at most this many (default and cap depend on the route)"},
		{Name: "offset", Type: 0, Description: "skip this many"},
	}
	telemetryParams = append([]Param{
		{Name: "since", Description: "from this time: RFC 3339, 'YYYY-MM-DD HH:MM:SS' (UTC), a date or Unix seconds"},
		{Name: "until", Description: "up to this time, same formats as since"},
	}, pageParams...)
	deviceListParams = append([]Param{
		{Name: "status", Enum: []string{"unknown", "provisioned", "online", "offline"}},
		{Name: "search", Description: "devices whose device_id or name contains this text (case-insensitive)"},
		{Name: "group_id", Type: int64(0), Description: "members of this group"},
		{Name: "tag", Description: "devices with this tag"},
		{Name: "firmware_version"},
		{Name: "sort", Enum: []string{"last_seen", "first_seen", "device_id", "name", "firmware_version", "status", "id"}},
		{Name: "order", Enum: []string{"asc", "desc"}},
	}, pageParams...)
	logParams = append([]Param{
		{Name: "device", Description: "one device's records (device_id= works too)"},
		{Name: "project"},
		{Name: "severity", Description: "at least this severity: trace, debug, info, warn, error, fatal or 1-24"},
		{Name: "q", Description: "text in the body, up to 256 bytes"},
	}, telemetryParams...)
)
