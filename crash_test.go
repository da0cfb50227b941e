package lodestone_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.2", 1}, {"1.9.2", "1.10.0", -1}, {"1.4.2", "1.4.2", 0}, {"2.0.0-rc2", "2.0.0-rc1", 1},
		{"1.0", "1.0.1", -1}, {"v1.02", "v1.2", 0}, {"1.0.0", "", 1}, {"", "", 0}, {"abc", "abd", -1},
	} {
		if got := lodestone.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
