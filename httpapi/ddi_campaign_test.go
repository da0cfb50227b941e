package httpapi_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/lodestone-fleet/lodestone/httpapi"
)

// campaign creates and activates a campaign over devices, two waves of half each, no soak, a 10% failure
// threshold, and returns its id.
func (e *ddiEnv) campaign(fw int64, devices ...string) string {
	e.t.Helper()
	a := e.do("POST", "/ota/campaigns", root, map[string]any{"name": "mixed", "firmware_id": fw,
		"device_ids": devices, "waves": []int{50, 100}, "soak_seconds": 0, "failure_threshold": 10}).must(e.t, 201)
	id := a.body["campaign"].(map[string]any)["id"].(float64)
	p := "/ota/campaigns/" + strconv.Itoa(int(id))
	e.do("POST", p+"/activate", root, nil).must(e.t, 200)
	return p
}

// tick advances every campaign once, as the ota-campaigns job does.
func (e *ddiEnv) tick() {
	e.t.Helper()
	if err := e.camps.Tick(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ddiEnv) campaignState(path string) (status, reason string, counts map[string]any) {
	e.t.Helper()
	a := e.do("GET", path, root, nil).must(e.t, 200)
	c := a.body["campaign"].(map[string]any)
	inner := c["campaign"].(map[string]any)
	return inner["status"].(string), inner["halt_reason"].(string), c
}

// ddiInstall walks a DDI controller through the deployment on offer: fetch, proceeding, then closed with result.
func (e *ddiEnv) ddiInstall(tok cred, device, result string) {
	e.t.Helper()
	dep := e.links(tok, device)["deploymentBase"]
	if dep == "" {
		e.t.Fatalf("%s has no deployment on offer", device)
	}
	e.do("GET", e.path(dep), tok, nil).must(e.t, 200)
	fb := e.path(strings.Split(dep, "?")[0]) + "/feedback"
	e.do("POST", fb, tok, feedback("proceeding", "none", "Installing")).must(e.t, 200)
	e.do("POST", fb, tok, feedback("closed", result, "result "+result)).must(e.t, 200)
}

// ferriteReport is a ferrite device's word on its update, through the route its firmware posts to.
func (e *ddiEnv) ferriteReport(device, status string) {
	e.t.Helper()
	e.do("POST", "/ota/report", nil, map[string]any{"device_id": device, "status": status}).must(e.t, 200)
}

// TestDDICampaignSameRulesAsFerrite runs campaigns over a ferrite device and a DDI controller: a wave advances when
// either kind installs, a failure of either kind halts the campaign with the same reason, and an abort turns a
// DDI deployment under way into a cancel request.
func TestDDICampaignSameRulesAsFerrite(t *testing.T) {
	ddiBackends(t, testDDICampaignSameRulesAsFerrite)
}

func testDDICampaignSameRulesAsFerrite(t *testing.T, pg bool) {
	e := newDDIEnvOn(t, httpapi.DDIConfig{PollInterval: 1e9}, pg)
	fw := e.upload([]byte("campaign image"), "3.0.0")

	// Advance: fer-1 (wave 1, ferrite) installs, then lin-1 (wave 2, DDI) does; the campaign completes.
	lin1 := targetToken(e.deviceKey("lin-1"))
	c := e.campaign(fw, "fer-1", "lin-1")
	if l := e.links(lin1, "lin-1"); l["deploymentBase"] != "" {
		t.Fatalf("lin-1 is in the second wave: %v", l)
	}
	e.ferriteReport("fer-1", "installed")
	e.tick()
	e.ddiInstall(lin1, "lin-1", "success")
	_, _, counts := e.campaignState(c)
	if counts["installed"] != float64(2) {
		t.Fatalf("counts %v", counts)
	}
	e.tick()
	if st, _, _ := e.campaignState(c); st != "completed" {
		t.Fatalf("status %s", st)
	}

	// Halt: the first wave fails, once on a DDI controller (closed/failure), once on a ferrite device; both
	// campaigns halt by the failure threshold with the same reason.
	a2 := targetToken(e.deviceKey("a-lin"))
	ddiFirst := e.campaign(fw, "a-lin", "z-fer")
	ferFirst := e.campaign(fw, "a-fer", "z-lin")
	e.ddiInstall(a2, "a-lin", "failure")
	e.ferriteReport("a-fer", "failed")
	e.tick()
	st1, why1, c1 := e.campaignState(ddiFirst)
	st2, why2, _ := e.campaignState(ferFirst)
	if st1 != "halted" || st2 != "halted" || why1 != why2 || !strings.Contains(why1, "1 of 1 offered devices failed") {
		t.Fatalf("halts: %s %q / %s %q", st1, why1, st2, why2)
	}
	if c1["failed"] != float64(1) || c1["pending"] != float64(1) {
		t.Fatalf("the second wave must not be offered: %v", c1)
	}
	devs := e.do("GET", ddiFirst+"/devices", root, nil).must(t, 200)
	if !strings.Contains(devs.raw, "result failure") {
		t.Fatalf("the controller's details are the failure reason: %s", devs.raw)
	}

	// Abort while a DDI controller installs: its deployment becomes a cancel request.
	b := targetToken(e.deviceKey("b-lin"))
	ab := e.campaign(fw, "b-lin")
	dep := e.links(b, "b-lin")["deploymentBase"]
	e.do("GET", e.path(dep), b, nil).must(t, 200)
	e.do("POST", e.path(strings.Split(dep, "?")[0])+"/feedback", b, feedback("download", "none")).must(t, 200)
	e.do("POST", ab+"/abort", root, nil).must(t, 200)
	if l := e.links(b, "b-lin"); l["cancelAction"] == "" || l["deploymentBase"] != "" {
		t.Fatalf("after abort: %v", l)
	}
}
