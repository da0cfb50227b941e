package ota

import (
	"context"

	"github.com/lodestone-fleet/lodestone"
)

// DDI is the hawkBit DDI side of the service: controllers (SWUpdate, RAUC's hawkBit updater, Zephyr) are
// lodestone devices, and a deployment is their OTA target, so targets set by hand and campaign waves reach them as
// they reach ferrite devices, and their feedback moves campaigns by the same rules.
type DDI struct {
	svc   *Service
	store lodestone.DDIStore
}

// DDI returns the DDI side of the service, or nil when its store keeps no DDI actions.
func (s *Service) DDI() *DDI {
	d, ok := s.store.(lodestone.DDIStore)
	if s.ddi != nil {
		d, ok = s.ddi, true
	}
	if !ok {
		return nil
	}
	return &DDI{svc: s, store: d}
}

// Store is the storage behind the DDI side.
func (d *DDI) Store() lodestone.DDIStore { return d.store }

// Poll returns the controller's action to offer and the one awaiting its cancel confirmation, either nil.
func (d *DDI) Poll(ctx context.Context, deviceID string) (offer, cancel *lodestone.DDIAction, err error) {
	return d.store.SyncDDIAction(ctx, deviceID, d.svc.now().UTC())
}

// Deployment returns the controller's action id with its artifact, and records that the controller fetched it.
func (d *DDI) Deployment(ctx context.Context, deviceID string, id int64) (*lodestone.DDIAction,
	*lodestone.Firmware, error) {
	a, err := d.store.FindDDIAction(ctx, deviceID, id)
	if err != nil {
		return nil, nil, err
	}
	f, err := d.svc.store.FindFirmwareByID(ctx, a.FirmwareID)
	if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
		return nil, nil, lodestone.Errorf(lodestone.ENOTFOUND, "the artifact of action %d was deleted", id)
	} else if err != nil {
		return nil, nil, err
	}
	if a.RetrievedAt == nil && a.Status == lodestone.DDIOpen {
		if err := d.store.RetrieveDDIAction(ctx, deviceID, id, d.svc.now().UTC()); err != nil {
			return nil, nil, err
		}
	}
	return a, f, nil
}

// Feedback records a controller's report on a deployment. While the action still belongs to the device's current
// target, it moves the campaign that set the target: work under way is downloading, closed with success (or
// none, which hawkBit takes as success) is installed, closed with failure (or canceled by the controller) failed,
// which counts against the campaign's failure threshold as a ferrite device's failure does.
func (d *DDI) Feedback(ctx context.Context, deviceID string, id int64, fb lodestone.DDIFeedback) (
	*lodestone.DDIAction, error) {
	a, err := d.store.FindDDIAction(ctx, deviceID, id)
	if err != nil {
		return nil, err
	}
	if a.Status != lodestone.DDIOpen && a.Status != lodestone.DDICanceling {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "action %d is %s; it takes no more feedback", id, a.Status)
	}
	current, err := d.store.CurrentDDIAction(ctx, a)
	if err != nil {
		return nil, err
	}
	var report string
	switch fb.Execution {
	case "closed":
		a.Status, a.Result, report = lodestone.DDIClosed, "success", lodestone.OTAInstalled
		if fb.Finished == "failure" {
			a.Result, report = "failure", lodestone.OTAFailed
		}
	case "canceled":
		a.Status, a.Result, report = lodestone.DDICanceled, "failure", lodestone.OTAFailed
		if fb.Detail == "" {
			fb.Detail = "canceled by the controller"
		}
	case "proceeding", "resumed", "download", "downloaded":
		report = lodestone.OTADownloading
	}
	a.Execution, a.Detail, a.UpdatedAt = fb.Execution, fb.Detail, d.svc.now().UTC()
	if err := d.store.UpdateDDIAction(ctx, a); err != nil {
		return nil, err
	}
	if current && report != "" {
		if _, err := d.svc.store.ReportOTA(ctx, lodestone.OTAReport{DeviceID: deviceID, Status: report,
			Reason: truncate(fb.Detail, 500), Version: a.Version}, a.UpdatedAt); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// CancelFeedback records a controller's answer to a cancel: closed (not failure) or canceled confirms it;
// rejected, or closed with failure, refuses it, and the action is then neither offered nor canceled again.
func (d *DDI) CancelFeedback(ctx context.Context, deviceID string, id int64, fb lodestone.DDIFeedback) (
	*lodestone.DDIAction, error) {
	a, err := d.store.FindDDIAction(ctx, deviceID, id)
	if err != nil {
		return nil, err
	}
	if a.Status != lodestone.DDICanceling {
		return nil, lodestone.Errorf(lodestone.ECONFLICT, "action %d is %s, not being canceled", id, a.Status)
	}
	switch {
	case fb.Execution == "rejected", fb.Execution == "closed" && fb.Finished == "failure":
		a.Status = lodestone.DDIRejected
	case fb.Execution == "closed", fb.Execution == "canceled":
		a.Status = lodestone.DDICanceled
	default:
		// proceeding and the like: the controller is still working on the cancel.
	}
	a.Execution, a.Detail, a.UpdatedAt = fb.Execution, fb.Detail, d.svc.now().UTC()
	return a, d.store.UpdateDDIAction(ctx, a)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n-- // not inside a UTF-8 sequence
	}
	return s[:n]
}
