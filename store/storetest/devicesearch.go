package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func testDeviceSearch(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// Last contact in this order, so the default order (newest first) is the reverse.
	for i, id := range []string{"Alpha-01", "beta-02", "GAMMA", "x_y", "xay", "100%", "Ünï"} {
		write(t, s, &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: at(i), Info: info("1.0", 1)})
	}
	for id, name := range map[string]string{"Alpha-01": "Kitchen Sensor", "GAMMA": "alpha roof", "Ünï": "ÉCOLE"} {
		if _, err := s.UpdateDevice(ctx, id, lodestone.DeviceUpdate{Name: sp(name)}); err != nil {
			t.Fatal(err)
		}
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "beta-02", ReceivedAt: at(10), Info: info("2.0", 2)})
	for _, c := range []struct {
		f    lodestone.DeviceFilter
		want []string
	}{
		{lodestone.DeviceFilter{Search: "alpha"}, []string{"GAMMA", "Alpha-01"}}, // device_id or name
		{lodestone.DeviceFilter{Search: "SENSOR"}, []string{"Alpha-01"}},
		{lodestone.DeviceFilter{Search: "-0"}, []string{"beta-02", "Alpha-01"}},
		{lodestone.DeviceFilter{Search: "_"}, []string{"x_y"}}, // no LIKE wildcards
		{lodestone.DeviceFilter{Search: "%"}, []string{"100%"}},
		{lodestone.DeviceFilter{Search: "Ünï"}, []string{"Ünï"}},
		// Only ASCII letters fold, the same on every backend.
		{lodestone.DeviceFilter{Search: "école"}, []string{}},
		{lodestone.DeviceFilter{Search: "École"}, []string{"Ünï"}},
		{lodestone.DeviceFilter{Search: "nothing"}, []string{}},
		{lodestone.DeviceFilter{Search: "a", FirmwareVersion: "2.0"}, []string{"beta-02"}},
		{lodestone.DeviceFilter{Search: "a", Sort: lodestone.SortDeviceID, Ascending: true, Limit: 2, Offset: 1},
			[]string{"GAMMA", "beta-02"}},
		{lodestone.DeviceFilter{Search: "a", Sort: lodestone.SortName, Ascending: true},
			[]string{"Alpha-01", "GAMMA", "beta-02", "xay"}},
	} {
		if got := deviceIDs(t, s, c.f); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.f, got, c.want)
		}
	}
}
