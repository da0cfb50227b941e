package httpapi

import "net/http"

// stabilityDocs: fleet health, stability per firmware version and device timelines (stability.go).
var stabilityDocs = map[string]RouteDoc{
	"GET /stability": {
		Summary: "Stability per firmware version",
		Description: "For each firmware version seen in the range: devices, device-hours observed (each contact " +
			"observes the time since the device's previous one, up to an hour), crash-free hours percentage " +
			"(observed hours without a fault, counted per device-hour), faults and unexpected reboots (watchdog, " +
			"faults, assertions, brownout) per 1,000 device-hours, unexpected reboots by reason, the top crash " +
			"issues with the devices they affected, and the comparison with the version its devices ran before " +
			"(previous, vs_previous: ratios of this version's rates over the previous one's). Ranges are read in " +
			"whole hours (from rounded down, to up; the answer says which). The campaign health gate uses the same " +
			"figures. Versions are ordered by device-hours.",
		Params: []Param{
			{Name: "from", Description: "start of the range (default: 7 days before to)", Example: "2026-03-01T00:00:00Z"},
			{Name: "to", Description: "end of the range (default: now); at most 400 days after from"},
			{Name: "group", Description: "only the devices of this group (by name)"},
			{Name: "tag", Description: "only devices with this tag (not with group)"},
			{Name: "version", Type: []string{}, Description: "only this firmware version; repeat for several"},
		},
		Responses: []Reply{{Status: http.StatusOK, Type: stabilityJSON{}}},
		Errors:    []int{http.StatusNotFound},
	},
	"GET /devices/{id}/timeline": {
		Summary: "A device's timeline",
		Description: "Everything that happened to one device, newest first, in one list: reboots (reason, " +
			"unexpected or not), faults (firmware version, crash issue, and the device's log records within " +
			"log_window of each), firmware changes, OTA states (campaign and DDI actions), online and offline " +
			"transitions (offline dated at the last contact). Paged: cursor continues from a previous page's " +
			"cursor; next is that page's URL, null at the end.",
		Params: []Param{deviceIDParam,
			{Name: "from", Description: "only entries at or after this time"},
			{Name: "to", Description: "only entries before this time"},
			{Name: "limit", Type: 0, Description: "entries per page, 1 to 500 (default 100)"},
			{Name: "cursor", Description: "continue after a previous page (its cursor field)"},
			{Name: "log_window", Description: "how far before and after each fault to read its logs, up to 10m; " +
				"0s for none (default 30s)", Example: "30s"},
			{Name: "logs_per_fault", Type: 0, Description: "log records per fault, 0 to 100 (default 20)"},
		},
		Responses: []Reply{{Status: http.StatusOK, Type: timelineJSON{}}},
		Errors:    []int{http.StatusNotFound},
	},
}
