// Package storetest is the conformance suite that every lodestone.Store backend must pass. A backend's test calls
// Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Opener returns a new, empty store; the store is closed by the suite.
type Opener func(tb testing.TB) lodestone.Store

// Run runs every conformance test against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s lodestone.Store)
	}{
		{"DeviceCreatedOnFirstContact", testDeviceCreatedOnFirstContact},
		{"DeviceTouchKeepsFirmware", testDeviceTouchKeepsFirmware},
		{"DeviceLastSeenNeverGoesBack", testDeviceLastSeenNeverGoesBack},
		{"DeviceLastSeenSlack", testDeviceLastSeenSlack},
		{"DeviceNotFound", testDeviceNotFound},
		{"DeviceListOrderAndPaging", testDeviceListOrderAndPaging},
		{"MarkOffline", testMarkOffline},
		{"Metrics", testMetrics},
		{"MetricSpecialFloats", testMetricSpecialFloats},
		{"MetricFilters", testMetricFilters},
		{"Faults", testFaults},
		{"RebootsHeartbeatsOtaRequests", testRebootsHeartbeatsOtaRequests},
		{"TraceAcrossWrites", testTraceAcrossWrites},
		{"TraceGapKeepsFragments", testTraceGapKeepsFragments},
		{"ManyBatchesOneTransaction", testManyBatchesOneTransaction},
		{"CanceledWriteStoresNothing", testCanceledWriteStoresNothing},
		{"UnknownDeviceFilterIsEmpty", testUnknownDeviceFilterIsEmpty},
		{"Settings", testSettings},
		{"FaultFirmwareRecorded", testFaultFirmwareRecorded},
		{"ClaimFaults", testClaimFaults},
		{"ELFIndexAndLateSymbols", testELFIndexAndLateSymbols},
		{"CrashGroups", testCrashGroups},
		{"CrashLegacySignature", testCrashLegacySignature},
		{"DeleteDeviceWhileSymbolicating", testDeleteDeviceWhileSymbolicating},
		{"DeviceContention", testDeviceContention},
		{"OTAContention", testOTAContention},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"Firmware", testFirmware},
		{"OTATargets", testOTATargets},
		{"CampaignLifecycle", testCampaignLifecycle},
		{"CampaignAbortKeepsInstalled", testCampaignAbortKeepsInstalled},
		{"CampaignHealth", testCampaignHealth},
		{"Stability", testStability},
		{"StabilityMatchesCampaignHealth", testStabilityMatchesCampaignHealth},
		{"DeviceTimeline", testDeviceTimeline},
		{"DeviceRegister", testDeviceRegister},
		{"DeviceLinkKey", testDeviceLinkKey},
		{"DeviceUpdate", testDeviceUpdate},
		{"DeviceListFilters", testDeviceListFilters},
		{"DeviceDelete", testDeviceDelete},
		{"DeviceImport", testDeviceImport},
		{"Groups", testGroups},
		{"LogsWriteFind", testLogsWriteFind},
		{"LogsCanceledWriteStoresNothing", testLogsCanceledWriteStoresNothing},
		{"CrashUploads", testCrashUploads},
		{"LogsScan", testLogsScan},
		{"LogsConcurrentIDs", testLogsConcurrentIDs},
		{"LogsLastID", testLogsLastID},
		{"LogIDsNeverReused", testLogIDsNeverReused},
		{"CrashUploadByID", testCrashUploadByID},
		{"CrashUploadIDsNeverReused", testCrashUploadIDsNeverReused},
		{"OTLPTokens", testOTLPTokens},
		{"DeviceSummaries", testDeviceSummaries},
		{"AlertQueue", testAlertQueue},
		{"AlertBackOnline", testAlertBackOnline},
		{"AlertRules", testAlertRules},
		{"AlertTransitions", testAlertTransitions},
		{"AlertScope", testAlertScope},
		{"Retention", testRetention},
		{"RetentionFleetHealth", testRetentionFleetHealth},
		{"Sessions", testSessions},
		{"DeviceCounts", testDeviceCounts},
		{"DeviceSearch", testDeviceSearch},
		{"SeriesDevices", testSeriesDevices},
		{"SeriesFleet", testSeriesFleet},
		{"SeriesFleetHours", testSeriesFleetHours},
		{"SeriesStep", testSeriesStep},
		{"SeriesInvalid", testSeriesInvalid},
		{"AuditAppendFind", testAuditAppendFind},
		{"AuditStoreWrites", testAuditStoreWrites},
		{"AuditRollsBackWithChange", testAuditRollsBackWithChange},
		{"AuditConcurrentAppends", testAuditConcurrentAppends},
		{"AuditPrune", testAuditPrune},
		{"DDIActions", testDDIActions},
		{"DDIBlobsAndAttributes", testDDIBlobsAndAttributes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
	t.Run("SealedReadsMatchRows", func(t *testing.T) { testSealedReadsMatchRows(t, open) })
}

// base is a fixed instant with millisecond precision, which every backend stores exactly.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func write(tb testing.TB, s lodestone.Store, batches ...*lodestone.DeviceBatch) {
	tb.Helper()
	if err := s.WriteTelemetry(context.Background(), batches); err != nil {
		tb.Fatalf("WriteTelemetry: %v", err)
	}
}

func mustDevice(tb testing.TB, s lodestone.Store, id string) *lodestone.Device {
	tb.Helper()
	d, err := s.FindDeviceByID(context.Background(), id)
	if err != nil {
		tb.Fatalf("FindDeviceByID(%q): %v", id, err)
	}
	return d
}

func info(fw string, build uint64) *lodestone.DeviceInfo {
	return &lodestone.DeviceInfo{FirmwareVersion: fw, BuildID: build}
}
