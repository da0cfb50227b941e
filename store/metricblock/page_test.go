package metricblock_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// A page merges rows and sealed points newest first (time, then id), keeps only the range, applies offset and
// limit, says when a block can no longer reach it, and names only the sealed points.
func TestPageMergesRowsAndBlocks(t *testing.T) {
	at := func(s int) time.Time { return time.UnixMilli(int64(s) * 1000).UTC() }
	block := func(ids ...int) []byte {
		e := metricblock.NewEncoder()
		for _, id := range ids {
			if err := e.Add(&metricblock.Point{ID: int64(id), At: int64(id) * 1000, Type: 1, Value: float64(id),
				Max: math.NaN()}); err != nil {
				t.Fatal(err)
			}
		}
		return e.Bytes()
	}
	// Row 40 (the store's newest limit+offset rows), blocks of ids 45..47 and 10..12, a range of [11, 48).
	rows := []*lodestone.Metric{{ID: 40, DeviceID: "row", Key: "k", ReceivedAt: at(40)}}
	p := metricblock.NewPage(rows, 4, 1, at(11), at(48))
	if p.MinTMax() != 11000 || p.Until() != 48000 {
		t.Fatalf("bounds %d %d", p.MinTMax(), p.Until())
	}
	for _, b := range []struct {
		tMax int64
		data []byte
	}{{47000, block(45, 46, 47)}, {12000, block(10, 11, 12)}} {
		if !p.Reaches(b.tMax) {
			t.Fatalf("block ending at %d should reach a page of 5", b.tMax)
		}
		if err := p.Add(7, 3, b.data); err != nil {
			t.Fatal(err)
		}
	}
	if p.Reaches(11000) {
		t.Fatal("a block older than the page's last entry still reaches it")
	}
	page, devs, keys := p.Metrics()
	p.Name(page, map[int64]string{7: "dev"}, map[int64]string{3: "temp"})
	var got []string
	for _, m := range page {
		got = append(got, fmt.Sprintf("%d %s %s", m.ID, m.DeviceID, m.Key))
	}
	// Newest first: 47 46 45 40 12 11 (10 is out of the range); offset 1, limit 4.
	if want := "[46 dev temp 45 dev temp 40 row k 12 dev temp]"; fmt.Sprint(got) != want || len(devs) != 3 ||
		keys[0] != 3 {
		t.Fatalf("page %v (sealed %v %v), want %s", got, devs, keys, want)
	}
	if empty, _, _ := metricblock.NewPage(nil, 10, 5, time.Time{}, time.Time{}).Metrics(); len(empty) != 0 ||
		empty == nil {
		t.Fatalf("an offset past the end gives %v, want an empty page", empty)
	}
}
