package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/lodestone-fleet/lodestone/ddi"
)

// ddiDocs: hawkBit's Direct Device Integration API (ddi.go) and the operator routes that show what DDI
// controllers reported. The shapes are hawkBit's: clients (SWUpdate, RAUC's updater, Zephyr) parse them.
var ddiDocs = map[string]RouteDoc{
	"GET /{tenant}/controller/v1/{controllerId}": {
		Summary: "Poll for work (hawkBit DDI)",
		Description: "A controller's poll: how long to sleep before the next one (config.polling.sleep, HH:MM:SS) " +
			"and _links to what it should do: deploymentBase when an update is assigned (its target or a " +
			"campaign wave), cancelAction when an open deployment is being canceled, configData while the device " +
			"has sent no attributes. No link: nothing to do. The poll also records the device's contact (created " +
			"on first poll). Authorization: TargetToken <device key> or GatewayToken <token>.",
		Params:    ddiBaseParams,
		Responses: []Reply{{Status: http.StatusOK, Type: ddiRootReply{}, Example: exampleDDIRoot}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}": {
		Summary: "Get a deployment (hawkBit DDI)",
		Description: "The deployment of an action: download and update are always forced; one chunk (part os " +
			"for an SWUpdate or RAUC image, bApp otherwise) with the artifact's file name, size, md5/sha1/sha256 " +
			"hashes and download links. Reading it marks the action retrieved.",
		Params: slices.Concat(ddiActionParams, []Param{{Name: "c",
			Description: "hawkBit's checksum of the action's content, part of the link; not checked"}}),
		Responses: []Reply{{Status: http.StatusOK, Type: ddiDeploymentReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"POST /{tenant}/controller/v1/{controllerId}/deploymentBase/{actionId}/feedback": {
		Summary: "Report a deployment's progress (hawkBit DDI)",
		Description: "status.execution is proceeding, scheduled, resumed, download (or downloading), downloaded, " +
			"rejected, canceled or closed; status.result.finished is success, failure or none (default). closed " +
			"with success records the firmware as the device's; closed with failure counts against the " +
			"campaign's health gate. A closed action takes no more feedback (409). Answers 200 with no body.",
		Params: ddiActionParams,
		Body: &Body{Type: ddi.Feedback{}, Description: "hawkBit's ActionFeedback",
			Example: map[string]any{"id": "17", "status": map[string]any{"execution": "closed",
				"result": map[string]any{"finished": "success"}, "details": []string{"installed"}}}},
		Responses: []Reply{{Status: http.StatusOK, Description: "recorded; no body"}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict},
	},
	"GET /{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}": {
		Summary:     "Get a cancel request (hawkBit DDI)",
		Description: "The action to stop (cancelAction.stopId). 404 when the action is not being canceled.",
		Params:      ddiActionParams,
		Responses: []Reply{{Status: http.StatusOK, Type: ddi.CancelAction{},
			Example: ddi.NewCancelAction(17)}},
		Errors: []int{http.StatusNotFound},
	},
	"POST /{tenant}/controller/v1/{controllerId}/cancelAction/{actionId}/feedback": {
		Summary: "Answer a cancel request (hawkBit DDI)",
		Description: "closed with success (or canceled) confirms the cancellation; rejected or closed with " +
			"failure refuses it and the deployment stays open. Answers 200 with no body.",
		Params:    ddiActionParams,
		Body:      &Body{Type: ddi.Feedback{}, Description: "hawkBit's ActionFeedback"},
		Responses: []Reply{{Status: http.StatusOK, Description: "recorded; no body"}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict},
	},
	"PUT /{tenant}/controller/v1/{controllerId}/configData": {
		Summary: "Send device attributes (hawkBit DDI)",
		Description: "The device's attributes (hardware revision, serial, ...) into its lodestone record, shown " +
			"by GET /devices/{id}/attributes. mode is merge (default), replace or remove; at most 100 " +
			"attributes, names up to 128 and values up to 512 characters. Answers 200 with no body.",
		Params: ddiBaseParams,
		Body: &Body{Type: ddi.ConfigData{}, Example: map[string]any{"mode": "merge",
			"data": map[string]string{"hwRevision": "2", "serial": "SN-0042"}}},
		Responses: []Reply{{Status: http.StatusOK, Description: "stored; no body"}},
	},
	"GET /{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts": {
		Summary: "List a software module's artifacts (hawkBit DDI)",
		Description: "The one artifact of a module (a lodestone firmware artifact) assigned to the controller, " +
			"as in the deployment. A module not assigned to it is 403.",
		Params:    ddiModuleParams,
		Responses: []Reply{{Status: http.StatusOK, Type: []ddiArtifactJSON{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /{tenant}/controller/v1/{controllerId}/softwaremodules/{moduleId}/artifacts/{fileName}": {
		Summary: "Download an artifact (hawkBit DDI)",
		Description: "The artifact's bytes, with Range, If-Range and an ETag (its SHA-256) so an interrupted " +
			"download resumes; fileName + \".MD5SUM\" answers its md5sum line as text. Only an artifact assigned " +
			"to the controller (403 otherwise).",
		Params: slices.Concat(ddiModuleParams, []Param{{Name: "fileName", In: "path",
			Description: "the artifact's file name, as in its links, or that name with .MD5SUM"}}),
		Responses: []Reply{
			{Status: http.StatusOK, ContentType: "application/octet-stream", Description: "the artifact, or its " +
				"MD5SUM line as text/plain", Headers: ddiDownloadHeaders},
			{Status: http.StatusOK, ContentType: "text/plain", Description: "the MD5SUM line: <md5>  <file name>"},
			{Status: http.StatusPartialContent, ContentType: "application/octet-stream",
				Description: "the requested range", Headers: ddiDownloadHeaders},
			{Status: http.StatusNotModified, Description: "not modified (If-None-Match, If-Modified-Since)"},
			// http.ServeContent's own answer to a range past the end.
			{Status: http.StatusRequestedRangeNotSatisfiable, ContentType: "text/plain",
				Description: "the range is not in the artifact", Headers: map[string]string{
					"Content-Range": "bytes */<size>"}},
		},
		Errors: []int{http.StatusNotFound},
	},

	"GET /devices/{id}/attributes": {
		Summary: "Get a device's attributes",
		Description: "What the device reported about itself through hawkBit DDI configData (name to value); " +
			"empty when it sent none. The device need not exist: an unknown id has no attributes.",
		Params: []Param{{Name: "id", Description: "the device's device_id (its DDI controllerId)"}},
		Responses: []Reply{{Status: http.StatusOK, Type: deviceAttributesReply{},
			Example: deviceAttributesReply{DeviceID: "gw-12", Attributes: map[string]string{"hwRevision": "2"}}}},
	},
	"GET /devices/{id}/ddi-actions": {
		Summary: "List a device's DDI deployments",
		Description: "The deployments offered to a hawkBit DDI controller, newest first: artifact, version, " +
			"campaign, status (open, canceling, canceled, closed), result (success, failure, none), the last " +
			"execution and detail it reported, and when it fetched the deployment.",
		Params: []Param{
			{Name: "id", Description: "the device's device_id (its DDI controllerId)"},
			{Name: "limit", Type: int64(0), Description: "at most this many; default 100"},
		},
		Responses: []Reply{{Status: http.StatusOK, Type: ddiActionsReply{}}},
	},
}

// seriesDocs: metric series for charts (series.go).
var seriesDocs = map[string]RouteDoc{
	"GET /devices/{id}/series": {
		Summary: "Chart a device's metric",
		Description: "One metric of one device as time buckets (count, min, max, avg, last per bucket), at most " +
			"about 1,000 buckets whatever the range: the step grows to fit. Buckets without samples are left " +
			"out. Use it instead of raw samples for anything over a range.",
		Params:    slices.Concat([]Param{deviceIDParam}, seriesParams),
		Responses: []Reply{{Status: http.StatusOK, Type: seriesJSON{}, Example: exampleSeries}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /series": {
		Summary: "Chart a metric over devices or the fleet",
		Description: "One series per device_id given (repeat device_id, up to the limit), or, without " +
			"device_id, one series for the fleet (fleet: true), narrowed by group_id and tag. Buckets as on " +
			"GET /devices/{id}/series.",
		Params: slices.Concat(seriesParams, []Param{
			{Name: "device_id", Type: []string{}, Description: "a device; repeat for several (compare)"},
			{Name: "group_id", Type: int64(0), Description: "fleet series: only this group's devices"},
			{Name: "tag", Description: "fleet series: only devices with this tag"}}),
		Responses: []Reply{{Status: http.StatusOK, Type: seriesJSON{}}},
	},
}

// auditDocs: the audit log (audit.go).
var auditDocs = map[string]RouteDoc{
	"GET /admin/audit": {
		Summary: "Read the audit log",
		Description: "Operator actions, newest first: who (actor_kind, actor, actor_id), what (action, " +
			"target_kind, target), before and after images, client address, request id, via (api, mcp, ...) " +
			"and the hash chain (prev_hash, hash). next is the next, older page's URL or null; head is the " +
			"chain's newest entry, to verify the pages against. Read-only: nothing edits the log.",
		Params: []Param{
			{Name: "actor", Description: "only this actor (user name, token id or FUOTA login)"},
			{Name: "action", Description: "only this action; a trailing .* matches a prefix (campaign.*)",
				Example: "campaign.*"},
			{Name: "target", Description: "only this target (device id, campaign id, ...)"},
			{Name: "target_kind", Description: "only this kind of target (device, campaign, user, ...)"},
			{Name: "since", Description: "entries at or after this time (RFC 3339 or 'YYYY-MM-DD HH:MM:SS', UTC)"},
			{Name: "until", Description: "entries before this time"},
			{Name: "before", Type: int64(0), Description: "entries older than this id: the cursor in next"},
			{Name: "limit", Type: int64(0), Description: "at most this many"},
		},
		Responses: []Reply{{Status: http.StatusOK, Type: AuditPageJSON{}}},
	},
}

// mcpDocs: the MCP endpoint and the fleet summary (mcp.go).
var mcpDocs = map[string]RouteDoc{
	"POST /mcp": {
		Summary: "MCP (streamable HTTP)",
		Description: "The Model Context Protocol endpoint for AI agents: one JSON-RPC message per POST, " +
			"stateless, answered as JSON (a notification gets 202 with no body). Its tools are this API's routes, " +
			"listed per the caller's role; writes take a confirmation token first. Send Accept: " +
			"application/json, text/event-stream.",
		Body: &Body{Type: mcpMessage{}, Description: "a JSON-RPC 2.0 request or notification",
			Example: mcpMessage{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/list"}},
		Responses: []Reply{
			{Status: http.StatusOK, Type: mcpMessage{}, Description: "the JSON-RPC response",
				Example: mcpMessage{JSONRPC: "2.0", ID: json.RawMessage("1"), Result: json.RawMessage(`{"tools":[]}`)}},
			{Status: http.StatusAccepted, Description: "a notification or response, accepted; no body"},
			// The SDK's transport refuses a malformed message, a wrong Accept or Content-Type, or a cross-site
			// browser request in plain text; the API's own checks answer ErrorBody.
			{Status: http.StatusBadRequest, Type: errorBody{}, Description: "a bad request"},
			{Status: http.StatusBadRequest, ContentType: "text/plain",
				Description: "the MCP transport refused the message: malformed, or Accept lacks application/json and text/event-stream"},
			{Status: http.StatusForbidden, Type: errorBody{}, Description: "refused: role, or a cross-origin browser request"},
			{Status: http.StatusForbidden, ContentType: "text/plain", Description: "a cross-origin browser request"},
			{Status: http.StatusRequestEntityTooLarge, Type: errorBody{}, Description: "the body is over 1 MiB"},
			{Status: http.StatusRequestEntityTooLarge, ContentType: "text/plain", Description: "the body is over 1 MiB"},
			{Status: http.StatusUnsupportedMediaType, ContentType: "text/plain", Description: "the body is not JSON"},
		},
	},
	"GET /fleet/summary": {
		Summary: "Fleet summary",
		Description: "Counts for the whole fleet: devices, devices online, groups, stored faults, metric samples " +
			"and reboots, and crash issues by state. Start here for an overview.",
		Responses: []Reply{{Status: http.StatusOK, Type: fleetSummaryReply{},
			Example: fleetSummaryReply{Devices: 120, DevicesOnline: 97, Groups: 4, Faults: 31, Metrics: 88412,
				Reboots: 210, CrashIssues: &crashIssueCounts{Open: 3, Resolved: 5}}}},
	},
}

var ddiBaseParams = []Param{
	{Name: "tenant", In: "path", Description: "the hawkBit tenant; this server answers one (DEFAULT unless " +
		"configured), compared without case", Example: "DEFAULT"},
	{Name: "controllerId", In: "path", Description: "the controller: the lodestone device_id", Example: "gw-12"},
}

var ddiActionParams = slices.Concat(ddiBaseParams, []Param{
	{Name: "actionId", In: "path", Type: int64(0), Description: "the action id from the poll's link"}})

var ddiModuleParams = slices.Concat(ddiBaseParams, []Param{
	{Name: "moduleId", In: "path", Type: int64(0), Description: "the software module: a firmware artifact id"}})

var ddiDownloadHeaders = map[string]string{
	"ETag":                "the artifact's SHA-256, quoted",
	"Accept-Ranges":       "bytes",
	"Content-Range":       "on 206: the range sent",
	"Content-Disposition": "attachment with the file name",
}

var seriesParams = []Param{
	{Name: "key", Required: true, Description: "the metric key", Example: "temp_c"},
	{Name: "from", Description: "range start (RFC 3339, 'YYYY-MM-DD HH:MM:SS' UTC or a date); default a day before to"},
	{Name: "to", Description: "range end, same formats; default now"},
	{Name: "step", Description: "bucket width: a duration (30s, 5m, 1h) or whole seconds; raised so the range " +
		"has at most about 1,000 buckets"},
}

// ddiRootReply is hawkBit's controller base resource.
type ddiRootReply struct {
	Config ddi.Config   `json:"config" doc:"polling.sleep: the time to the next poll, HH:MM:SS"`
	Links  ddiRootLinks `json:"_links"`
}

type ddiRootLinks struct {
	DeploymentBase *ddi.Link `json:"deploymentBase,omitempty" doc:"an update to install"`
	CancelAction   *ddi.Link `json:"cancelAction,omitempty" doc:"an open deployment to stop"`
	ConfigData     *ddi.Link `json:"configData,omitempty" doc:"send the device's attributes (PUT)"`
}

var exampleDDIRoot = map[string]any{"config": map[string]any{"polling": map[string]any{"sleep": "00:05:00"}},
	"_links": map[string]any{"deploymentBase": map[string]any{
		"href": "https://fleet.example.com/DEFAULT/controller/v1/gw-12/deploymentBase/17?c=2952112834"}}}

// ddiDeploymentReply is hawkBit's DeploymentBase (ddi.DeploymentBase with its links named).
type ddiDeploymentReply struct {
	ID         string            `json:"id" doc:"the action id"`
	Deployment ddiDeploymentJSON `json:"deployment"`
}

type ddiDeploymentJSON struct {
	Download string         `json:"download" doc:"forced"`
	Update   string         `json:"update" doc:"forced"`
	Chunks   []ddiChunkJSON `json:"chunks"`
}

type ddiChunkJSON struct {
	Part      string            `json:"part" doc:"os (an SWUpdate or RAUC image) or bApp"`
	Version   string            `json:"version"`
	Name      string            `json:"name"`
	Artifacts []ddiArtifactJSON `json:"artifacts"`
}

type ddiArtifactJSON struct {
	Filename string           `json:"filename"`
	Hashes   ddi.Hashes       `json:"hashes" doc:"hex md5, sha1 and sha256 of the bytes"`
	Size     int64            `json:"size"`
	Links    ddiArtifactLinks `json:"_links"`
}

// ddiArtifactLinks are hawkBit's download links: the plain-HTTP ones always, the HTTPS ones when the client came
// over HTTPS.
type ddiArtifactLinks struct {
	Download     *ddi.Link `json:"download,omitempty" doc:"HTTPS download (only over HTTPS)"`
	DownloadHTTP ddi.Link  `json:"download-http"`
	MD5Sum       *ddi.Link `json:"md5sum,omitempty" doc:"HTTPS MD5SUM file (only over HTTPS)"`
	MD5SumHTTP   ddi.Link  `json:"md5sum-http"`
}

type deviceAttributesReply struct {
	DeviceID   string            `json:"device_id"`
	Attributes map[string]string `json:"attributes"`
}

type ddiActionsReply struct {
	Actions []ddiActionJSON `json:"actions"`
}

var exampleSeries = seriesJSON{Key: "temp_c", From: "2026-05-01T00:00:00Z", To: "2026-05-02T00:00:00Z",
	FromMS: 1777593600000, ToMS: 1777680000000, StepMS: 3600000, Series: []seriesOneJSON{{DeviceID: "pump-7",
		Buckets: []bucketJSON{{StartMS: 1777593600000, Count: 12, Min: 21.5, Max: 23, Avg: 22.1, Last: 22.4}}}}}

// JSONSchema: NaN and infinities are written as null.
func (jsonFloat) JSONSchema() map[string]any { return map[string]any{"type": []any{"number", "null"}} }

// mcpMessage is a JSON-RPC 2.0 message as MCP sends it: a request or notification (method, params) or a
// response (result or error).
type mcpMessage struct {
	JSONRPC string          `json:"jsonrpc" doc:"2.0"`
	ID      json.RawMessage `json:"id,omitempty" doc:"a number or string; absent on notifications"`
	Method  string          `json:"method,omitempty" doc:"initialize, tools/list, tools/call, ..."`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *mcpError       `json:"error,omitempty"`
}

type mcpError struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type fleetSummaryReply struct {
	Devices       int64             `json:"devices"`
	DevicesOnline int64             `json:"devices_online"`
	Groups        int64             `json:"groups"`
	Faults        int64             `json:"faults" doc:"stored fault records"`
	Metrics       int64             `json:"metrics" doc:"stored metric samples"`
	Reboots       int64             `json:"reboots"`
	CrashIssues   *crashIssueCounts `json:"crash_issues,omitempty" doc:"crash issues by state"`
}

type crashIssueCounts struct {
	Open     int64 `json:"open"`
	Resolved int64 `json:"resolved"`
	Muted    int64 `json:"muted"`
}
