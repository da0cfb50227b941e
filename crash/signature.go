// Package crash symbolicates faults in the background and files them into crash groups: workers take faults that
// lack symbols from the store, resolve them against the ELF of the firmware their device ran, and save the
// backtrace, the decoded causes and a signature over the top frames' function names.
package crash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/symbol"
)

// signatureFrames is how many certain frames (pc, lr, cfi) make a signature: enough to tell apart two callers of
// a common helper, few enough that an unrelated change deep in the stack keeps the issue.
const signatureFrames = 3

// Symbolicate turns a fault into what the store keeps. ix may be nil when no ELF matched: the fault then gets its
// decoded causes and ferrite's signature over fault type and PC.
func Symbolicate(f *lodestone.Fault, ix *symbol.Index, elfID int64) lodestone.Symbolication {
	out := lodestone.Symbolication{FaultID: f.ID, ELFID: elfID}
	for _, c := range symbol.DecodeFault(f.CFSR, f.HFSR, f.MMFAR, f.BFAR) {
		out.Causes = append(out.Causes, lodestone.FaultCause{Name: c.Name, Register: c.Register, Text: c.Text,
			Address: c.Address, AddressValid: c.AddressValid})
	}
	if ix != nil {
		for _, sf := range ix.Backtrace(f) {
			bf := lodestone.BacktraceFrame{Address: sf.Address, Method: string(sf.Method)}
			for _, fr := range sf.Frames {
				bf.Frames = append(bf.Frames, lodestone.SourceFrame{Function: fr.Function, File: fr.File,
					Line: fr.Line, Inlined: fr.Inlined})
			}
			out.Backtrace = append(out.Backtrace, bf)
		}
		if len(out.Backtrace) > 0 && len(out.Backtrace[0].Frames) > 0 && out.Backtrace[0].Frames[0].Function != "" {
			top := out.Backtrace[0].Frames[0]
			s := symbol.Frame{Function: top.Function, File: top.File, Line: top.Line}.String()
			out.Symbol = &s
		}
	}
	out.Signature, out.Title = Signature(f.FaultType, f.Registers.PC, out.Backtrace)
	if out.Title == nil {
		out.Title = out.Symbol
	}
	return out
}

// Signature returns the crash group key of a fault and, when it has symbols, a title. With symbols the key is a
// hash over the fault type and the function names (inline chains included) of the top certain frames, so the
// same crash in two builds is one issue; without, it is ferrite's fault type and PC ("%02x%08x").
func Signature(faultType uint8, pc uint32, bt []lodestone.BacktraceFrame) (string, *string) {
	var names []string
	var title string
	n := 0
	for _, f := range bt {
		if f.Method == string(symbol.MethodScan) || n == signatureFrames {
			break
		}
		var chain []string
		for _, sf := range f.Frames {
			if sf.Function != "" {
				chain = append(chain, sf.Function)
			}
		}
		if n == 0 && len(chain) == 0 {
			break // the faulting function is unknown: nothing to name the crash by
		}
		if n == 0 {
			title = fmt.Sprintf("%s in %s", chunk.FaultTypeName(faultType), strings.Join(chain, " < "))
		}
		names = append(names, strings.Join(chain, "<"))
		n++
	}
	if len(names) == 0 {
		return fmt.Sprintf("%02x%08x", faultType, pc&^1), nil
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("v1|%d|%s", faultType, strings.Join(names, "|"))))
	return hex.EncodeToString(h[:10]), &title
}
