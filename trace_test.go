package lodestone_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone"
)

func TestAssembleTrace(t *testing.T) {
	frag := func(off uint64, s string) lodestone.TraceFragment {
		return lodestone.TraceFragment{Offset: off, Data: []byte(s)}
	}
	ok := []struct {
		frags []lodestone.TraceFragment
		want  string
	}{
		{nil, ""},
		{[]lodestone.TraceFragment{frag(0, "abc")}, "abc"},
		{[]lodestone.TraceFragment{frag(3, "def"), frag(0, "abc")}, "abcdef"},
		{[]lodestone.TraceFragment{frag(0, "abc"), frag(0, "abc"), frag(3, "d")}, "abcd"}, // resent fragment
		{[]lodestone.TraceFragment{frag(0, "abcd"), frag(2, "cdef")}, "abcdef"},           // consistent overlap
	}
	for _, c := range ok {
		got, err := lodestone.AssembleTrace(c.frags, 100)
		if err != nil || string(got) != c.want {
			t.Fatalf("AssembleTrace(%v) = %q, %v; want %q", c.frags, got, err, c.want)
		}
	}
	bad := [][]lodestone.TraceFragment{
		{frag(1, "x")},                   // gap at the start
		{frag(0, "ab"), frag(5, "x")},    // gap in the middle
		{frag(0, "abc"), frag(1, "xx")},  // conflicting overlap
		{frag(0, "abc"), frag(0, "abd")}, // conflicting resend
		{frag(98, "abc")},                // over the limit
	}
	for _, frags := range bad {
		if got, err := lodestone.AssembleTrace(frags, 100); err == nil {
			t.Fatalf("AssembleTrace(%v) = %q, want an error", frags, got)
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	err := lodestone.Errorf(lodestone.ENOTFOUND, "device %q not found", "x")
	if lodestone.ErrorCode(err) != lodestone.ENOTFOUND || lodestone.ErrorMessage(err) != `device "x" not found` {
		t.Fatalf("code %q message %q", lodestone.ErrorCode(err), lodestone.ErrorMessage(err))
	}
	other := errorString("disk I/O error at /var/lib/secret")
	if lodestone.ErrorCode(other) != lodestone.EINTERNAL || lodestone.ErrorMessage(other) != "internal error" {
		t.Fatal("an unknown error must be internal with a generic message")
	}
	if lodestone.ErrorCode(nil) != "" || lodestone.ClampLimit(0) != 100 || lodestone.ClampLimit(5000) != 1000 ||
		lodestone.ClampLimit(7) != 7 {
		t.Fatal("nil code or limit clamping")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
