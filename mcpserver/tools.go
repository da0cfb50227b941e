package mcpserver

// The tool table: every tool is one route of the HTTP API, named by its pattern as the route table registers it,
// so a tool answers exactly what the route answers and demands exactly the route's access. Descriptions are
// written for an agent: what comes back, when to use it, and the units.

// Param is one argument of a tool and where it goes in the request to the tool's route. A tool's arguments are
// its route's parameters and body fields, as the route's metadata (httpapi.APIRoute, the OpenAPI document)
// describes them (bind.go); an entry in this table names one of them and adds what an agent needs: a fuller
// Description, a Default, Required, or an Enum narrowing a free-text parameter. In and Type always come from
// the route.
type Param struct {
	Name        string
	In          string // "path", "query" or "body"
	Type        string // JSON Schema type: "string", "integer" or "boolean"
	Description string
	Required    bool
	Enum        []string
	Default     any // sent when the agent gives none, to keep answers small; also shown in the schema
}

// Tool is one MCP tool over one route. Title and Description, when empty, are the route's Summary and
// Description.
type Tool struct {
	Name        string
	Route       string // "METHOD /path/{var}", exactly as in (*httpapi.Server).Routes()
	Title       string
	Description string
	Params      []Param
	Body        map[string]any // fixed body fields the tool always sends
	// Write tools change state. They run only after a confirmation: the first call answers what would happen
	// and a single-use token, which the confirm tool redeems.
	Write bool
	// Preview is a read route, filled from the same arguments, whose answer shows the current state of what
	// a write would change; a 404 there stops the write before a token is issued.
	Preview string
	// PreviewMayBeMissing lets the write go on when the preview answers 404 (a device without a target yet).
	PreviewMayBeMissing bool
	TargetKind          string // audit target kind; the target is the first path parameter
}

// timeParams are the since/until arguments that telemetry routes share.
var timeParams = []Param{
	{Name: "since", Description: "Only records at or after this time: RFC 3339 (2026-05-01T08:00:00Z), '2026-05-01 08:00:00' (UTC) or a date."},
	{Name: "until", Description: "Only records before this time, same formats as since."},
}

func limit(def int, what string) Param {
	return Param{Name: "limit", Default: def, Description: "How many " + what + " to return at most."}
}

var offset = Param{Name: "offset", Description: "How many to skip, for the next page."}

var deviceID = Param{Name: "id", Required: true,
	Description: "The device: its device_id (as it reports itself) or its hex device key such as A300F1B2."}

func with(ps ...[]Param) []Param {
	var out []Param
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

// Tools is the table. ConfirmTool is added beside the write tools.
var Tools = []Tool{
	{Name: "fleet_summary", Route: "GET /fleet/summary", Title: "Fleet summary",
		Description: "Counts for the whole fleet: devices, devices online, groups, stored faults, metric samples and " +
			"reboots, and crash issues by state (open, resolved, muted). Start here for an overview before " +
			"drilling into devices or crashes."},
	{Name: "list_devices", Route: "GET /devices", Title: "List devices", TargetKind: "device",
		Description: `Lists devices as {"devices":[...]}, each with device_id, name, firmware_version, build_id, ` +
			"status (unknown, provisioned, online, offline), tags, first_seen and last_seen (UTC, " +
			"'YYYY-MM-DD HH:MM:SS'). Search by id or name; filter by status, tag, firmware version or group; newest contact first " +
			"unless sort says otherwise. Use it to find devices, then get_device or the device_* tools for one.",
		Params: []Param{
			{Name: "status", Description: "Only devices in this state."},
			{Name: "search", Description: "Only devices whose device_id or name contains this text (case-insensitive)."},
			{Name: "tag", Description: "Only devices carrying this tag."},
			{Name: "firmware_version", Description: "Only devices running this firmware version."},
			{Name: "group_id", Description: "Only members of this device group (its numeric id)."},
			{Name: "sort", Description: "Sort key; times sort newest first, names A to Z."},
			{Name: "order", Description: "Override the sort direction."},
			limit(50, "devices"), offset,
		}},
	{Name: "get_device", Route: "GET /devices/{id}", Title: "One device", TargetKind: "device",
		Description: `One device as {"device":{...}}: firmware version and build id, status, tags, provisioning ` +
			"and first/last contact (UTC). Answers not_found when no device has that id or key.",
		Params: []Param{deviceID}},
	{Name: "device_faults", Route: "GET /devices/{id}/faults", Title: "A device's recent faults", TargetKind: "device",
		Description: `A device's recent faults (hard faults, crashes), newest first, as {"faults":[...]}: ` +
			"fault_type_name, the registers pc/lr/sp/cfsr/hfsr/mmfar/bfar (32-bit values as decimal integers), " +
			"symbol and backtrace when symbolicated (symbol_state done; pending while it runs; no_elf when no ELF " +
			"was uploaded for the build), causes decoded from the fault status registers, firmware_version, " +
			"crash_group_id (the crash issue) and created_at (UTC).",
		Params: with([]Param{deviceID}, timeParams, []Param{limit(20, "faults")})},
	{Name: "device_metrics", Route: "GET /devices/{id}/metrics", Title: "A device's recent metrics", TargetKind: "device",
		Description: `A device's recent metric samples, newest first, as {"metrics":[...]} with key, metric_type, ` +
			"value_json (the value as the device sent it; units are the firmware's, usually in the key name such " +
			"as temp_c or heap_free_bytes) and created_at (UTC). Narrow to one metric with key.",
		Params: with([]Param{deviceID, {Name: "key", Description: "Only this metric key."}},
			timeParams, []Param{limit(50, "samples")})},
	{Name: "device_reboots", Route: "GET /devices/{id}/reboots", Title: "A device's recent reboots", TargetKind: "device",
		Description: `A device's recent reboots, newest first, as {"reboots":[...]} with reason and reason_name ` +
			"(the reset cause the device reported), boot_sequence, uptime_before_reboot and created_at " +
			"(UTC). Frequent reboots with a watchdog or fault reason point at a crash loop.",
		Params: with([]Param{deviceID}, timeParams, []Param{limit(20, "reboots")})},
	{Name: "list_crash_issues", Route: "GET /crashes", Title: "Crash issues", TargetKind: "crash_issue",
		Description: `Crash issues (faults grouped by signature), most frequent first, as {"crash_groups":[...],` +
			`"total":N}: id, title (the symbol where it crashed, when known), fault_type_name, pc, state (open, ` +
			"resolved, muted, merged), regression, occurrence_count, affected_device_count, firmware_versions, " +
			"first_seen and last_seen (UTC). Use get_crash_issue for one issue's symbolicated backtraces.",
		Params: []Param{
			{Name: "state",
				Description: "Only issues in this state."},
			limit(20, "issues"), offset,
		}},
	{Name: "get_crash_issue", Route: "GET /crashes/{id}", Title: "One crash issue", TargetKind: "crash_issue",
		Description: `One crash issue as {"group":{...},"occurrences":[...]}: the issue as list_crash_issues ` +
			"shows it, and its latest occurrences (newest first), each a fault with its symbolicated backtrace " +
			"(frames with function, file and line from the uploaded ELF), decoded causes, registers, device_id " +
			"and firmware_version. Use it to explain a crash or decide whether to resolve it.",
		Params: with([]Param{{Name: "id", Required: true,
			Description: "The crash issue's id (from list_crash_issues or a fault's crash_group_id)."}},
			timeParams, []Param{limit(5, "occurrences")})},
	{Name: "list_campaigns", Route: "GET /ota/campaigns", Title: "OTA campaigns", TargetKind: "campaign",
		Description: `Firmware update campaigns as {"campaigns":[...]}, with id, name, firmware_id, target_version, ` +
			"status (created, active, paused, halted by its health gate, completed, aborted, rolled_back), " +
			"rollout_percent, failure_threshold (a fraction, 0-1), waves and timestamps (UTC). Use " +
			"get_campaign for one campaign's progress.",
		Params: []Param{{Name: "status", Description: "Only campaigns in these states, comma-separated (active,paused)."}}},
	{Name: "get_campaign", Route: "GET /ota/campaigns/{id}", Title: "Campaign status", TargetKind: "campaign",
		Description: `One campaign's status as {"campaign":{"campaign":{...},"pending":N,"offered":N,` +
			`"downloading":N,"installed":N,"failed":N}}: the campaign and how many of its devices are in each ` +
			"update state (device counts).",
		Params: []Param{{Name: "id", Required: true, Description: "The campaign's id."}}},
	{Name: "search_logs", Route: "GET /logs", Title: "Search logs", TargetKind: "device",
		Description: `Stored device log records (OTLP), newest first, as {"logs":[...]} with time (RFC 3339, ` +
			"UTC), severity_number and severity_text, body, device_id, project, attributes and trace_id. Filter by text, device, project, minimum severity and time. " +
			"Use it to see what a device logged around a fault or reboot.",
		Params: with([]Param{
			{Name: "q", Description: "Text the record's body contains (at most 256 bytes)."},
			{Name: "device", Description: "Only this device's records (its device_id)."},
			{Name: "project", Description: "Only this project's records."},
			{Name: "severity", Enum: []string{"trace", "debug", "info", "warn", "error", "fatal"},
				Description: "Only records at or above this severity."},
		}, timeParams, []Param{limit(50, "records")})},

	{Name: "resolve_crash_issue", Route: "PATCH /crashes/{id}", Title: "Resolve a crash issue", Write: true,
		Preview: "GET /crashes/{id}?limit=3", TargetKind: "crash_issue", Body: map[string]any{"state": "resolved"},
		Description: "Marks a crash issue resolved (state resolved). If it happens again on a newer firmware it " +
			"reopens as a regression. Two steps: this call changes nothing and answers what would happen with a " +
			"confirmation_token; call confirm with that token, this tool's name and the same arguments to do it.",
		Params: []Param{{Name: "id", Required: true, Description: "The crash issue's id."}}},
	{Name: "set_ota_target", Route: "POST /ota/targets", Title: "Set a device's firmware target", Write: true,
		Preview: "GET /ota/targets/{device_id}", PreviewMayBeMissing: true, TargetKind: "device",
		Description: "Sets the firmware a device should update to: the device is offered it on its next update " +
			"check. Two steps: this call changes nothing and answers the current target and a confirmation_token; " +
			"call confirm with that token, this tool's name and the same arguments to do it.",
		Params: []Param{
			{Name: "device_id", Required: true, Description: "The device's device_id."},
			{Name: "target_version", Required: true, Description: "Firmware version to install."},
			{Name: "target_build_id", Description: "Build id of that firmware, when known."},
			{Name: "firmware_id", Description: "Id of an uploaded firmware image to serve."},
			{Name: "from_version", Description: "Only update a device running this version."},
		}},
	{Name: "pause_campaign", Route: "POST /ota/campaigns/{id}/pause", Title: "Pause a campaign", Write: true,
		Preview: "GET /ota/campaigns/{id}", TargetKind: "campaign",
		Description: "Pauses an active firmware campaign: no further devices are offered the update until it is " +
			"resumed; devices already updating carry on. Two steps: this call changes nothing and answers the " +
			"campaign's status and a confirmation_token; call confirm with that token, this tool's name and the " +
			"same arguments to do it.",
		Params: []Param{{Name: "id", Required: true, Description: "The campaign's id."}}},
}

// ConfirmTool is the name of the tool that redeems a confirmation token.
const ConfirmTool = "confirm"

const confirmDescription = "Performs a write that a write tool (resolve_crash_issue, set_ota_target, " +
	"pause_campaign) prepared. Pass the confirmation_token it answered, the tool's name and exactly the same " +
	"arguments. A token works once, only for the caller it was issued to, and expires after 5 minutes; a " +
	"refused token must be requested again. Answers the API's result of the write."
