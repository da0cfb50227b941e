package symbol

import "testing"

func TestDemangle(t *testing.T) {
	tests := []struct{ in, want string }{
		// C and other plain names pass through.
		{"main", "main"},
		{"write_register", "write_register"},
		{"weighted.constprop.0", "weighted.constprop.0"},
		{"", ""},
		// Itanium C++, as addr2line -C and c++filt print it.
		{"_ZN3geo7measureERKNS_5ShapeE", "geo::measure(geo::Shape const&)"},
		{"_ZN3geo7measureERKNS_5ShapeES2_", "geo::measure(geo::Shape const&, geo::Shape const&)"},
		{"_ZNK3geo4Rect4areaEv", "geo::Rect::area() const"},
		{"_ZN3geo10accumulateIiEET_PKS1_i", "int geo::accumulate<int>(int const*, int)"},
		{"_ZN3geo6SquareC2Ei", "geo::Square::Square(int)"},
		{"_ZTVN3geo4RectE", "vtable for geo::Rect"},
		{"_Z3foov.constprop.0", "foo() [clone .constprop.0]"},
		{"_ZN3foo3barEv@plt", "foo::bar()"},
		// Rust legacy: the ::h<hash> suffix is dropped so names stay stable across builds.
		{"_ZN4core9panicking5panic17h2d0e8c3e4b1e6f2aE", "core::panicking::panic"},
		{"_ZN71_$LT$Test$u20$$u2b$$u20$$u27$static$u20$as$u20$foo..Bar$LT$Test$GT$$GT$3bar17h930b740aa94f1d3aE",
			"<Test + 'static as foo::Bar<Test>>::bar"},
		// Rust v0: crate disambiguators are dropped for the same reason.
		{"_RNvCs1234_7mycrate3foo", "mycrate::foo"},
		{"_RNvMsr_NtCs3ssYzQotkvD_3std4pathNtB5_7PathBuf3newCs15kBYyAo9fc_7mycrate", "<std::path::PathBuf>::new"},
		{"_RNvNtCs1234_7mycrate4util8checksum", "mycrate::util::checksum"},
		// Not really mangled: returned unchanged.
		{"_Znotmangled", "_Znotmangled"},
		{"_R!!", "_R!!"},
	}
	for _, tt := range tests {
		if got := Demangle(tt.in); got != tt.want {
			t.Errorf("Demangle(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
