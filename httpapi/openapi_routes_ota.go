package httpapi

import (
	"net/http"

	"github.com/lodestone-fleet/lodestone/ota"
)

// otaDocs: firmware updates (see routeDocs in openapi_routes.go).
var otaDocs = map[string]RouteDoc{
	"GET /ota/targets": {
		Summary:   "List update targets",
		Responses: []Reply{{Status: 200, Type: targetsReply{}}},
	},
	"POST /ota/targets": {
		Summary:     "Set a device's update target",
		Description: "The version (or uploaded artifact) the device should run; it is offered on its next check.",
		Body: &Body{Type: targetRequest{}, Example: map[string]any{"device_id": "pump-7", "target_version": "1.4.0",
			"target_build_id": 0, "firmware_id": 12}},
		Responses: []Reply{{Status: 200, Type: targetReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	},
	"GET /ota/targets/{device_id}": {
		Summary:   "Get a device's update target",
		Responses: []Reply{{Status: 200, Type: targetReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"DELETE /ota/targets/{device_id}": {
		Summary:   "Remove a device's update target",
		Responses: []Reply{{Status: 200, Type: okReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /ota/firmware": {
		Summary:   "List firmware artifacts",
		Responses: []Reply{{Status: 200, Type: artifactsReply{}}},
	},
	"POST /ota/firmware": {
		Summary: "Upload a firmware artifact",
		Description: "The image as the raw body, described by headers. Artifacts are immutable: the same " +
			"upload again answers the stored one, different bytes under the same version and build are 409.",
		Params: []Param{
			{Name: "X-Firmware-Version", In: "header", Description: "the version; default unknown"},
			{Name: "X-Build-Id", In: "header", Description: "the build id, unsigned decimal"},
			{Name: "X-Signer", In: "header"},
			{Name: "X-Notes", In: "header", Description: "release notes, up to 4096 bytes"},
		},
		Body:      &Body{ContentType: "application/octet-stream", Description: "the firmware image"},
		Responses: []Reply{{Status: 200, Type: artifactOKReply{}}},
		Errors:    []int{http.StatusConflict, http.StatusRequestEntityTooLarge},
	},
	"GET /ota/firmware/{id}": {
		Summary:   "Get a firmware artifact's record",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: artifactReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"DELETE /ota/firmware/{id}": {
		Summary:   "Delete a firmware artifact",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: okReply{}}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict},
	},
	"POST /ota/firmware/{id}/approve": {
		Summary:     "Approve a FUOTA upload for signing",
		Description: "A FUOTA upload gets a signed manifest only once an operator approves it.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 200, Type: artifactOKReply{}}},
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	},
	"GET /ota/firmware/{id}/download": {
		Summary:     "Download a firmware image",
		Description: "For devices: a device key fetches only its own target's artifact. Supports Range.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{
			{Status: 200, ContentType: "application/octet-stream", Description: "the image"},
			{Status: 206, ContentType: "application/octet-stream", Description: "the requested range"},
			{Status: 304, Description: "not modified (If-None-Match, If-Modified-Since)"},
			// http.ServeContent's own answer to a range past the end.
			{Status: 416, ContentType: "text/plain", Description: "the range is not in the image"},
		},
		Errors: []int{http.StatusNotFound},
	},
	"GET /ota/firmware/{id}/manifest": {
		Summary:     "Get a firmware manifest",
		Description: "The signed manifest (version, build, size, sha256) a device verifies before installing.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 200, Type: manifestReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"GET /ota/signing-key": {
		Summary:   "Get the manifest signing key",
		Responses: []Reply{{Status: 200, Type: signingKeyReply{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /ota/check/{device_id}": {
		Summary:     "Check for an update",
		Description: "For devices that send no chunks: the update on offer, or 204 when there is none.",
		Params: []Param{
			{Name: "version", Description: "the running firmware version"},
			{Name: "build_id", Type: uint64(0), Description: "the running build id"},
		},
		Responses: []Reply{
			{Status: 200, Type: offerReply{}, Example: offerReply{OTA: ota.Offer{Version: "1.4.0", BuildID: 42,
				Size: 182044, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				URL: "/ota/firmware/12/download", FirmwareID: 12}}},
			{Status: 204, Description: "no update"},
		},
	},
	"POST /ota/report": {
		Summary:     "Report an update's progress",
		Description: "A device says it is downloading, installed or failed; campaigns count it.",
		Body:        &Body{Type: otaReportRequest{}, Example: otaReportRequest{DeviceID: "pump-7", Status: "installed", Version: "1.4.0"}},
		Responses:   []Reply{{Status: 200, Type: otaReportReply{}}},
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	},
	"GET /ota/campaigns": {
		Summary:   "List campaigns",
		Params:    []Param{{Name: "status", Description: "comma-separated statuses"}},
		Responses: []Reply{{Status: 200, Type: campaignsReply{}}},
	},
	"POST /ota/campaigns": {
		Summary: "Create a campaign",
		Description: "A staged rollout of an artifact to a group, tags or listed devices, in waves with a " +
			"soak time and health checks. It starts as a draft; activate it.",
		Body: &Body{Type: campaignRequest{}, Example: map[string]any{"name": "1.4 rollout", "firmware_id": 12,
			"target_group_id": 3, "waves": []int{10, 50, 100}, "soak_seconds": 3600}},
		Responses: []Reply{{Status: 201, Type: campaignCreated{}}},
		Errors:    []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	},
	"GET /ota/campaigns/{id}": {
		Summary:     "Get a campaign's status",
		Description: "The campaign and how many devices are pending, offered, downloading, installed, failed.",
		Params:      []Param{{Name: "id", Type: int64(0)}},
		Responses:   []Reply{{Status: 200, Type: campaignReply{}}},
		Errors:      []int{http.StatusNotFound},
	},
	"GET /ota/campaigns/{id}/devices": {
		Summary:   "List a campaign's devices",
		Params:    []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{{Status: 200, Type: campaignDevicesReply{}}},
	},
	"POST /ota/campaigns/{id}/activate": campaignAction("Activate a campaign",
		"Starts a draft campaign: targets are set for its first wave."),
	"POST /ota/campaigns/{id}/resume": campaignAction("Resume a campaign",
		"Continues a paused campaign where it stopped."),
	"POST /ota/campaigns/{id}/pause": campaignAction("Pause a campaign",
		"Stops offering the update to more devices; devices already updating go on.",
		campaignActionReply{OK: true, Status: "paused"}),
	"POST /ota/campaigns/{id}/abort": campaignAction("Abort a campaign",
		"Ends the campaign and puts the devices' previous targets back. Not reversible."),
	"POST /ota/campaigns/{id}/rollback": campaignAction("Roll a campaign back",
		"Ends the campaign and removes the targets it set, so devices are offered their previous firmware."),
}

func campaignAction(summary, desc string, example ...any) RouteDoc {
	r := Reply{Status: 200, Type: campaignActionReply{}}
	if len(example) > 0 {
		r.Example = example[0]
	}
	return RouteDoc{Summary: summary, Description: desc, Params: []Param{{Name: "id", Type: int64(0)}},
		Responses: []Reply{r}, Errors: []int{http.StatusNotFound, http.StatusConflict}}
}
