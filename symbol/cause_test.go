package symbol

import (
	"reflect"
	"testing"
)

func TestDecodeFault(t *testing.T) {
	tests := []struct {
		name                    string
		cfsr, hfsr, mmfar, bfar uint32
		want                    []Cause
	}{
		{name: "nothing set"},
		{
			name: "precise bus error with valid BFAR", cfsr: cfsrPRECISERR | cfsrBFARVALID, bfar: 0x20001000,
			want: []Cause{{Name: "PRECISERR", Register: "BFSR", Text: "precise data bus error at 0x20001000",
				Address: 0x20001000, AddressValid: true}},
		},
		{
			name: "precise bus error, BFAR stale", cfsr: cfsrPRECISERR, bfar: 0xdeadbeef,
			want: []Cause{{Name: "PRECISERR", Register: "BFSR", Text: "precise data bus error"}},
		},
		{
			name: "data access violation with MMFAR", cfsr: cfsrDACCVIOL | cfsrMMARVALID, mmfar: 0x0,
			want: []Cause{{Name: "DACCVIOL", Register: "MMFSR", Text: "data access violation at 0x00000000",
				AddressValid: true}},
		},
		{
			name: "MMFAR valid bit does not apply to BFAR", cfsr: cfsrPRECISERR | cfsrMMARVALID, mmfar: 4, bfar: 8,
			want: []Cause{{Name: "PRECISERR", Register: "BFSR", Text: "precise data bus error"}},
		},
		{
			name: "undefined instruction", cfsr: cfsrUNDEFINSTR,
			want: []Cause{{Name: "UNDEFINSTR", Register: "UFSR", Text: "undefined instruction"}},
		},
		{
			name: "divide by zero escalated", cfsr: cfsrDIVBYZERO, hfsr: hfsrFORCED,
			want: []Cause{
				{Name: "DIVBYZERO", Register: "UFSR", Text: "divide by zero"},
				{Name: "FORCED", Register: "HFSR",
					Text: "forced hard fault (escalated from a configurable fault that could not run)"},
			},
		},
		{
			name: "stack overflow on entry", cfsr: cfsrMSTKERR | cfsrSTKERR,
			want: []Cause{
				{Name: "MSTKERR", Register: "MMFSR", Text: "stack overflow on exception entry (MSTKERR)"},
				{Name: "STKERR", Register: "BFSR", Text: "stack overflow on exception entry (STKERR)"},
			},
		},
		{
			name: "imprecise and invstate", cfsr: cfsrIMPRECISERR | cfsrINVSTATE | cfsrBFARVALID, bfar: 0x40000000,
			want: []Cause{
				{Name: "IMPRECISERR", Register: "BFSR",
					Text: "imprecise data bus error (the PC may be past the faulting store)"},
				{Name: "INVSTATE", Register: "UFSR",
					Text: "invalid state: branch to an address without the Thumb bit (bad function pointer)"},
			},
		},
		{
			name: "vector table and debug event", hfsr: hfsrVECTTBL | hfsrDEBUGEVT,
			want: []Cause{
				{Name: "VECTTBL", Register: "HFSR", Text: "bus fault reading the vector table"},
				{Name: "DEBUGEVT", Register: "HFSR", Text: "debug event (breakpoint without a debugger attached)"},
			},
		},
		{
			name: "ferrite test vector (CFSR 0x400, HFSR 0x40000000)", cfsr: 0x400, hfsr: 0x40000000,
			want: []Cause{
				{Name: "IMPRECISERR", Register: "BFSR",
					Text: "imprecise data bus error (the PC may be past the faulting store)"},
				{Name: "FORCED", Register: "HFSR",
					Text: "forced hard fault (escalated from a configurable fault that could not run)"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecodeFault(tt.cfsr, tt.hfsr, tt.mmfar, tt.bfar)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Every defined bit yields exactly one cause; reserved bits yield none.
func TestDecodeFaultEveryBit(t *testing.T) {
	defined := 0
	for bit := range 32 {
		got := DecodeFault(1<<bit, 0, 0, 0)
		if len(got) > 1 {
			t.Errorf("CFSR bit %d: %d causes", bit, len(got))
		}
		defined += len(got)
	}
	if defined != 18 {
		t.Errorf("%d CFSR bits decoded, want 18", defined)
	}
	for bit := range 32 {
		if got := DecodeFault(0, 1<<bit, 0, 0); len(got) != 0 && bit != 1 && bit != 30 && bit != 31 {
			t.Errorf("HFSR reserved bit %d decoded as %v", bit, got)
		}
	}
}
