package httpapi

import (
	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/ota"
)

// The envelopes below name the shapes that handlers write as map literals ({"devices": [...]}), so the API
// description has a Go type for each answer. The validation test (openapi_test.go) checks every response of the
// test suite against them, so a handler that writes something else fails it.

type healthReply struct {
	Status string `json:"status" doc:"always ok: the process answers"`
}

type readyReply struct {
	Status string `json:"status" doc:"ready"`
	Leader *bool  `json:"leader,omitempty" doc:"whether this replica runs the periodic jobs (only with leader election)"`
}

type authModeReply struct {
	Mode      string `json:"mode" doc:"basic or oidc"`
	Authority string `json:"authority,omitempty" doc:"the OpenID issuer (oidc only)"`
	ClientID  string `json:"client_id,omitempty" doc:"the OpenID client id (oidc only)"`
}

type authMeReply struct {
	Name string `json:"name"`
	Role string `json:"role" doc:"viewer, provisioner or admin"`
	Mode string `json:"mode"`
}

type devicesReply struct {
	Devices []deviceJSON `json:"devices"`
}

type deviceReply struct {
	Device deviceJSON `json:"device"`
}

type faultsReply struct {
	Faults []faultJSON `json:"faults"`
}

type metricsReply struct {
	Metrics []metricJSON `json:"metrics"`
}

type rebootsReply struct {
	Reboots []rebootJSON `json:"reboots"`
}

type heartbeatsReply struct {
	Heartbeats []heartbeatJSON `json:"heartbeats"`
}

type tracesReply struct {
	Traces []traceJSON `json:"traces"`
}

type okReply struct {
	OK bool `json:"ok"`
}

type elfUploadReply struct {
	OK   bool    `json:"ok"`
	Path string  `json:"path" doc:"where the ELF is read: /elfs/{id}"`
	ELF  elfJSON `json:"elf"`
}

type elfsReply struct {
	ELFs []elfJSON `json:"elfs"`
}

type elfReply struct {
	ELF elfJSON `json:"elf"`
}

type crashGroupsReply struct {
	CrashGroups []crashGroupJSON `json:"crash_groups"`
	Total       int              `json:"total" doc:"groups matching the filter, ignoring limit and offset"`
}

type crashReply struct {
	Group       crashGroupJSON `json:"group"`
	Occurrences []faultJSON    `json:"occurrences" doc:"newest first, with backtraces and decoded causes"`
}

type crashGroupReply struct {
	Group crashGroupJSON `json:"group"`
}

type crashPatchRequest struct {
	State *string `json:"state" doc:"open, resolved or muted"`
}

type crashMergeRequest struct {
	Into int64 `json:"into" doc:"the crash group that takes this one's faults"`
}

type usersReply struct {
	Users []userJSON `json:"users"`
}

type userReply struct {
	User userJSON `json:"user"`
}

type tokensReply struct {
	Tokens []tokenJSON `json:"tokens"`
}

type tokenCreated struct {
	Token  tokenJSON `json:"token"`
	Secret string    `json:"secret" doc:"the token, shown once: only its hash is kept"`
}

type deviceKeysReply struct {
	Keys []tokenJSON `json:"keys"`
}

type deviceKeyCreated struct {
	Key    tokenJSON `json:"key"`
	Secret string    `json:"secret" doc:"the device key, shown once: only its hash is kept"`
}

type bulkRegisterReply struct {
	Registered int          `json:"registered"`
	Devices    []deviceJSON `json:"devices"`
	Errors     []string     `json:"errors" doc:"ferrite's per-row messages"`
	Results    []bulkResult `json:"results" doc:"one per row, in request order"`
}

type groupsReply struct {
	Groups []groupJSON `json:"groups"`
}

type groupReply struct {
	Group groupJSON `json:"group"`
}

type logsReply struct {
	Logs []lodestone.LogRecordJSON `json:"logs"`
}

type crashUploadsReply struct {
	CrashUploads []crashUploadJSON `json:"crash_uploads"`
}

type retentionCounts struct {
	Faults  int64 `json:"faults"`
	Metrics int64 `json:"metrics"`
	Reboots int64 `json:"reboots"`
}

type retentionReply struct {
	RetentionDays int              `json:"retention_days" doc:"0: nothing is purged"`
	Enabled       bool             `json:"enabled"`
	LastRun       *purgeJSON       `json:"last_run" doc:"the last purge on any replica; null before the first"`
	Counts        *retentionCounts `json:"counts,omitempty" doc:"rows kept now"`
}

type deliveriesReply struct {
	Deliveries []deliveryJSON `json:"deliveries"`
}

type targetsReply struct {
	Targets []targetJSON `json:"targets"`
}

type targetReply struct {
	Target targetJSON `json:"target"`
}

// targetRequest is the body of POST /ota/targets (the handler decodes the same fields).
type targetRequest struct {
	DeviceID      string  `json:"device_id"`
	TargetVersion string  `json:"target_version"`
	TargetBuildID int64   `json:"target_build_id"`
	FirmwareURL   *string `json:"firmware_url"`
	FirmwareID    *int64  `json:"firmware_id" doc:"an uploaded artifact; its version and build fill the target"`
	FromVersion   *string `json:"from_version" doc:"offer only to devices running this version"`
}

type artifactsReply struct {
	Artifacts []firmwareJSON `json:"artifacts"`
}

type artifactReply struct {
	Artifact firmwareJSON `json:"artifact"`
}

type artifactOKReply struct {
	OK       bool         `json:"ok"`
	Artifact firmwareJSON `json:"artifact"`
}

type manifestReply struct {
	Manifest  string `json:"manifest" doc:"the signed JSON text, verbatim"`
	Signature string `json:"signature" doc:"base64 ed25519 signature over manifest"`
	Algorithm string `json:"algorithm"`
}

type signingKeyReply struct {
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key" doc:"base64 ed25519 public key"`
}

type offerReply struct {
	OTA ota.Offer `json:"ota"`
}

// otaReportRequest is the body of POST /ota/report.
type otaReportRequest struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status" doc:"downloading, installed or failed"`
	Reason   string `json:"reason"`
	Version  string `json:"version"`
	BuildID  uint64 `json:"build_id"`
}

type otaReportReply struct {
	OK             bool   `json:"ok"`
	CampaignStatus string `json:"campaign_status" doc:"the device's state in its campaign; empty outside one"`
}

type campaignsReply struct {
	Campaigns []campaignJSON `json:"campaigns"`
}

// campaignRequest is the body of POST /ota/campaigns.
type campaignRequest struct {
	Name             string   `json:"name"`
	FirmwareID       int64    `json:"firmware_id"`
	TargetVersion    string   `json:"target_version"`
	Strategy         string   `json:"strategy"`
	TargetGroupID    *int64   `json:"target_group_id"`
	TargetTags       *string  `json:"target_tags"`
	RolloutPercent   *int64   `json:"rollout_percent"`
	FailureThreshold *float64 `json:"failure_threshold"`
	DeviceIDs        []string `json:"device_ids,omitempty"`
	FromVersion      string   `json:"from_version,omitempty"`
	Waves            []int    `json:"waves,omitempty" doc:"cumulative rollout percentages, one per wave"`
	SoakSeconds      int64    `json:"soak_seconds,omitempty"`
	HealthRatio      *float64 `json:"health_ratio"`
	MinDeviceHours   float64  `json:"min_device_hours,omitempty"`
	OfferTimeout     int64    `json:"offer_timeout_seconds,omitempty"`
	InstallTimeout   int64    `json:"install_timeout_seconds,omitempty"`
}

type campaignCreated struct {
	Campaign     campaignJSON `json:"campaign"`
	DevicesAdded int          `json:"devices_added"`
}

type campaignProgress struct {
	Campaign    campaignJSON `json:"campaign"`
	Pending     int64        `json:"pending"`
	Offered     int64        `json:"offered"`
	Downloading int64        `json:"downloading"`
	Installed   int64        `json:"installed"`
	Failed      int64        `json:"failed"`
}

type campaignReply struct {
	Campaign campaignProgress `json:"campaign"`
}

type campaignDevicesReply struct {
	Devices []campaignDeviceJSON `json:"devices"`
}

type campaignActionReply struct {
	OK              bool   `json:"ok"`
	Status          string `json:"status" doc:"the campaign's status after the action"`
	TargetsSet      *int   `json:"targets_set,omitempty" doc:"activate, resume: device targets set"`
	TargetsRestored *int   `json:"targets_restored,omitempty" doc:"abort: targets put back as they were"`
	TargetsRemoved  *int   `json:"targets_removed,omitempty" doc:"rollback: targets removed"`
}

type otlpTokensReply struct {
	Tokens []otlpTokenJSON `json:"tokens"`
}

type otlpTokenCreated struct {
	Token  otlpTokenJSON `json:"token"`
	Secret string        `json:"secret" doc:"the token, shown once: only its SHA-256 is kept"`
}

type reportDevicesReply struct {
	Devices []deviceReportJSON `json:"devices"`
}

// openAPIDocument stands for the document itself in its own entry: any JSON object.
type openAPIDocument map[string]any
